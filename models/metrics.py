"""Ranking metrics for next-location prediction, accumulated over batches."""

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
        self.ranks.append((logp > true).sum(1) + 1)  # 1 = best; ties count in the target's favour
        self.top1.append(logp.argmax(1))
        self.targets.append(target)
        self.loss_sum += float(-true.sum())

    def result(self) -> dict[str, float]:
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


def macro_f1(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> float:
    """Mean F1 over the classes that occur as a target or a prediction."""
    tp = torch.bincount(target[pred == target], minlength=n_classes).double()
    n_pred = torch.bincount(pred, minlength=n_classes).double()
    n_true = torch.bincount(target, minlength=n_classes).double()
    present = (n_pred + n_true) > 0
    f1 = 2 * tp[present] / (n_pred[present] + n_true[present])
    return float(f1.mean()) if present.any() else 0.0
