"""Ranking metrics for next-location prediction, accumulated over batches.

Ties count against the target: its rank is 1 + the number of other classes scoring at least as
high, so a constant output ranks every target last instead of first. A NaN score counts as
ahead of the target and a NaN target score is a miss, so a broken model can never score well.
Acc@1 and macro-F1 use the same top-1: the unique best class, none when the best is tied or
the row holds a NaN (then the sample is a miss for both).
"""

from __future__ import annotations

import torch


class RankMetrics:
    """Acc@1, Hit@5/10, MRR, NDCG@10 and macro-F1 from log-probs, without per-sample Python."""

    def __init__(self, n_classes: int):
        self.n_classes = n_classes
        self.ranks: list[torch.Tensor] = []
        self.top1: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        self.loss_sum = 0.0

    @torch.no_grad()
    def add(self, logp: torch.Tensor, target: torch.Tensor) -> None:
        true = logp.gather(1, target[:, None])
        self.ranks.append(pessimistic_rank(logp, true))
        self.top1.append(unique_top1(logp))
        self.targets.append(target)
        self.loss_sum += float(-true.sum())

    def result(self) -> dict[str, float]:
        if not self.ranks:
            raise ValueError("no samples to score: the split is empty")
        rank = torch.cat(self.ranks).double()
        pred, target = torch.cat(self.top1), torch.cat(self.targets)
        n = len(rank)
        return {
            "acc1": float((rank <= 1).double().mean()),
            "hit5": float((rank <= 5).double().mean()),
            "hit10": float((rank <= 10).double().mean()),
            "mrr": float((1 / rank).mean()),
            "ndcg10": float(torch.where(rank <= 10, 1 / torch.log2(rank + 1), 0).mean()),
            "f1": macro_f1(pred, target, self.n_classes),
            "loss": self.loss_sum / max(n, 1),
        }


def pessimistic_rank(logp: torch.Tensor, true: torch.Tensor, atol: float = 0.0) -> torch.Tensor:
    """1 + the classes scoring >= the target (or NaN); the last rank when the target is NaN.
    `atol`: scores that close to the target's count as ties (cosines of parallel vectors can
    differ in the last bit)."""
    ahead = (logp >= true - atol) | logp.isnan()  # includes the target itself when it is not NaN
    rank = ahead.sum(1)
    return torch.where(true.squeeze(1).isnan(), logp.shape[1], rank)


def unique_top1(logp: torch.Tensor) -> torch.Tensor:
    """The best class per row, or -1 where the best score is tied or the row holds a NaN."""
    best, idx = logp.max(1)
    n_best = (logp == best[:, None]).sum(1)
    ok = (n_best == 1) & ~logp.isnan().any(1)
    return torch.where(ok, idx, -1)


def macro_f1(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> float:
    """Mean F1 over the classes that occur as a target or a prediction; pred -1 (no unique top
    class) is a miss for the target's class and a prediction of no class."""
    tp = torch.bincount(target[pred == target], minlength=n_classes).double()
    n_pred = torch.bincount(pred[pred >= 0], minlength=n_classes).double()
    n_true = torch.bincount(target, minlength=n_classes).double()
    present = (n_pred + n_true) > 0
    f1 = 2 * tp[present] / (n_pred[present] + n_true[present])
    return float(f1.mean()) if present.any() else 0.0
