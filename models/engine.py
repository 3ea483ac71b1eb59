"""The training engine shared by sweep trials and retrain: `fit()` and `evaluate()`.

`fit` keeps the best epoch's weights by a validation metric (val Hit@5 by default), stops after
`patience` epochs without improvement, and returns that best epoch, never merely the last.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from data_io import Dataset, SplitArrays
from data_io.batches import iter_batches
from models.build import build_model
from models.config import ModelConfig, NonFiniteLoss, TrainConfig, split_config
from models.losses import Loss
from models.metrics import RankMetrics


@dataclass
class EpochReport:
    epoch: int
    metrics: dict[str, float]  # train_loss, val_loss, val_acc1, val_hit5, ..., epoch_s, samples_s
    is_best: bool  # this epoch improved the selection metric
    model: nn.Module  # the live model (its weights are this epoch's)
    best_epoch: int  # best epoch so far (this one when is_best)
    last: bool  # the fit ends after this epoch (max epochs or patience), unless stopped earlier


@dataclass
class FitResult:
    best_epoch: int
    best_metrics: dict[str, float]
    state_dict: dict[str, torch.Tensor]  # the best epoch's weights
    history: list[dict[str, float]]
    n_params: int
    epochs_run: int
    stopped_by: str  # "epochs", "patience" or "callback"
    meta: dict = field(default_factory=dict)


# Called after each epoch; returning True stops the fit (e.g. a scheduler pruned the trial).
EpochCallback = Callable[[EpochReport], "bool | None"]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, else CUDA when one is visible (Ray hides GPUs from CPU-only trials)."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


@torch.no_grad()
def evaluate(model: nn.Module, split: SplitArrays, n_classes: int, batch_size: int = 512) -> dict[str, float]:
    """Acc@1, Hit@5/10, MRR, NDCG@10, macro-F1 and mean NLL over a split."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    acc = RankMetrics(n_classes)
    for b in iter_batches(split, batch_size):
        b = b.to(device)
        acc.add(model(b.seq, b.user, b.lengths), b.target)
    model.train(was_training)
    return acc.result()


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and the zero-init state vectors (1-D tensors)."""
    decay = [p for p in model.parameters() if p.dim() > 1]
    rest = [p for p in model.parameters() if p.dim() <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr)


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps)
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    warm = max(1, int(cfg.warmup_frac * total_steps))

    def cosine(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))
    return torch.optim.lr_scheduler.LambdaLR(opt, cosine)


def _balanced_sample(targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows drawn with replacement in inverse proportion to their target's frequency."""
    weight = 1.0 / np.bincount(targets)[targets]
    return rng.choice(len(targets), size=len(targets), replace=True, p=weight / weight.sum())


def _better(value: float, best: float | None, maximize: bool) -> bool:
    return best is None or (value > best if maximize else value < best)


def fit(config: dict | tuple[ModelConfig, TrainConfig], data: Dataset,
        on_epoch: EpochCallback | None = None, device: str | None = None) -> FitResult:
    """Train one configuration on data['train'], select on data['val']."""
    mcfg, tcfg = split_config(config) if isinstance(config, dict) else config
    torch.manual_seed(tcfg.seed)
    rng = np.random.default_rng(tcfg.seed)
    n_classes = data.info.n_locations
    dev = pick_device(device)
    model = build_model(mcfg, data.info).to(dev)
    train = data["train"]
    steps = math.ceil(len(train) / tcfg.batch_size) * tcfg.epochs
    opt, loss_fn = _optimizer(model, tcfg), Loss(tcfg, train.target, n_classes).to(dev)
    sched = _scheduler(opt, tcfg, steps)
    meta = {"over_correction": tcfg.loss == "weighted_ce" and tcfg.sampler == "balanced"}
    best, best_epoch, best_state, history, stopped_by = None, 0, None, [], "epochs"
    for epoch in range(1, tcfg.epochs + 1):
        start = time.perf_counter()
        train_loss, n_seen = _train_epoch(model, train, tcfg, opt, sched, loss_fn, rng, epoch)
        train_s = time.perf_counter() - start
        val = evaluate(model, data["val"], n_classes)
        metrics = {"epoch": epoch, "train_loss": train_loss, **{f"val_{k}": v for k, v in val.items()},
                   "epoch_s": time.perf_counter() - start, "samples_s": n_seen / train_s}
        history.append(metrics)
        improved = _better(metrics[tcfg.metric], best, tcfg.maximize)
        if improved:
            best, best_epoch = metrics[tcfg.metric], epoch
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        last = epoch == tcfg.epochs or epoch - best_epoch >= tcfg.patience
        if on_epoch is not None and on_epoch(EpochReport(epoch, metrics, improved, model, best_epoch, last)):
            stopped_by = "callback"
            break
        if last:
            stopped_by = "epochs" if epoch == tcfg.epochs else "patience"
            break
    return FitResult(best_epoch, history[best_epoch - 1], best_state, history,
                     sum(p.numel() for p in model.parameters()), len(history), stopped_by, meta)


def _train_epoch(model, train: SplitArrays, cfg: TrainConfig, opt, sched, loss_fn, rng, epoch: int):
    model.train()
    sample = _balanced_sample(train.target, rng) if cfg.sampler == "balanced" else None
    total, seen = 0.0, 0
    device = next(model.parameters()).device
    for b in iter_batches(train, cfg.batch_size, seed=int(rng.integers(2**31)), sample=sample):
        b = b.to(device)
        loss = loss_fn(model(b.seq, b.user, b.lengths), b.target)
        value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteLoss(f"non-finite training loss ({value}) at epoch {epoch} step {seen // cfg.batch_size + 1} "
                                f"(lr={cfg.lr:g}); lower the learning rate or enable grad_clip")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        total += value * len(b)
        seen += len(b)
    return total / max(seen, 1), seen
