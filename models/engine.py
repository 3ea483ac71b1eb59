"""The training engine shared by sweep trials and retrain: `fit()` and `evaluate()`, for every task.

`fit` keeps the best epoch's weights by a validation metric (the task's objective by default),
stops after `patience` epochs without improvement, and returns that best epoch, never merely the
last. With `folds: K` it trains the dataset's K grouped CV folds in lockstep, one model each, and
selects on the mean over folds of each epoch's metric. A fit can be resumed from
`EpochReport.resume_state()` and then continues exactly as if never stopped. `fractions` (a data-
fidelity sweep's early rungs) trains epoch e on a seeded per-user share fractions[e - 1] of the
training samples; validation always reads the whole split, and patience restarts where the share grows.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from data_io import Dataset, SplitArrays
from data_io.batches import iter_batches
from data_io.folds import fold_view, group_subset
from models.build import build_model
from models.config import ModelConfig, ModelError, NonFiniteLoss, NonFiniteMetricError, TrainConfig, split_config
from models.layers import set_matmul
from models.optim import FlatAdamW
from models.tasks import LossFn, Task, get_task


@dataclass
class EpochReport:
    epoch: int
    metrics: dict[str, float]  # train_loss, val_loss, val_acc1, val_hit5, ..., epoch_s, samples_s (fold means)
    is_best: bool  # this epoch improved the selection metric
    model: nn.Module  # the live model (its weights are this epoch's; the first fold's with folds)
    best_epoch: int  # best epoch so far (this one when is_best)
    last: bool  # the fit ends after this epoch (max epochs or patience), unless stopped earlier
    # A copy of everything needed to continue after this epoch (pass it to fit(resume=...)); call it
    # inside the callback. A function so that only the epochs a caller checkpoints pay for the copy.
    resume_state: Callable[[], dict] | None = None


@dataclass
class FitResult:
    best_epoch: int
    best_metrics: dict[str, float]
    state_dict: dict[str, torch.Tensor]  # the best epoch's weights (the first fold's with folds)
    history: list[dict[str, float]]
    n_params: int
    epochs_run: int
    stopped_by: str  # "epochs", "patience" or "callback"
    meta: dict = field(default_factory=dict)
    fold_states: list[dict[str, torch.Tensor]] = field(default_factory=list)  # best weights of every fold


SUBSET_SEED = 0  # which samples an epoch on a share of the training split draws (fit's `fractions`)
# Called after each epoch; returning True stops the fit (e.g. a scheduler pruned the trial).
EpochCallback = Callable[[EpochReport], "bool | None"]


@dataclass
class _Run:
    """One model trained on one (train, val) view: the whole fit, or one CV fold of it."""
    data: Dataset
    model: nn.Module
    opt: torch.optim.Optimizer
    sched: object
    loss: LossFn
    rng: np.random.Generator
    trains: dict[float, SplitArrays]  # the training samples of each share an epoch uses (1.0: all)
    best_state: dict | None = None


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, else CUDA when one is visible (Ray hides GPUs from CPU-only trials)."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def evaluate(model: nn.Module, data: Dataset, split: str = "val", batch_size: int = 512) -> dict[str, float]:
    """The task's metrics (names without the val_ prefix) of `model` on one split of `data`."""
    return get_task(data.info.task).evaluate(model, data, split, None, batch_size)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, no weight decay on biases and norms (1-D tensors), gradients clipped to `grad_clip`
    inside its step, over flat parameter groups (models.optim: ~7% of a pointer step on the CPU)."""
    return FlatAdamW(model, cfg.lr, cfg.weight_decay, cfg.grad_clip)


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps, pct_start=cfg.pct_start,
                                                   div_factor=cfg.div_factor, final_div_factor=cfg.final_div_factor)
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
        on_epoch: EpochCallback | None = None, device: str | None = None, resume: dict | None = None,
        fractions: list[float] | None = None) -> FitResult:
    """Train one configuration on data['train'] (or each CV fold's), select on data['val'].
    `resume` (a `resume_state()` of the same config and data) continues after its epoch.
    `fractions`: the share of the training samples each epoch trains on (past its end: all)."""
    mcfg, tcfg = split_config(config) if isinstance(config, dict) else config
    task = get_task(data.info.task)
    task.check_train(tcfg)
    views = [fold_view(data, f) for f in range(tcfg.folds)] if tcfg.folds else [data]
    if any(len(v["val"]) == 0 for v in views):
        raise ModelError("the validation split is empty: epochs cannot be selected; "
                         "prepare the data with a validation fraction > 0")
    dev = pick_device(device)
    share = _shares(fractions, tcfg.epochs)
    runs = [_make_run(mcfg, tcfg, task, view, dev, tcfg.seed + f, share) for f, view in enumerate(views)]
    meta = {"over_correction": tcfg.loss == "weighted_ce" and tcfg.sampler == "balanced"}
    best, best_epoch, history, stopped_by, first = None, 0, [], "epochs", 1
    if resume is not None:
        best, best_epoch, history, first = _restore(resume, runs, tcfg, dev, share)
        if first > tcfg.epochs:  # the saved epoch ended the fit: reported, but the run not closed
            stopped_by = "epochs" if resume["epoch"] == tcfg.epochs else "patience"
    for epoch in range(first, tcfg.epochs + 1):
        metrics = _mean([_run_epoch(run, tcfg, task, epoch, share[epoch - 1]) for run in runs], tcfg.metric)
        if fractions:  # what this epoch trained on, every fold's samples (a data-fidelity sweep's results show it)
            metrics["train_fraction"] = share[epoch - 1]
            metrics["train_samples"] = sum(len(run.trains[share[epoch - 1]]) for run in runs)
        metrics = {"epoch": epoch, **metrics}
        history.append(metrics)
        if math.isnan(metrics[tcfg.metric]):
            raise NonFiniteMetricError(f"{tcfg.metric} is NaN at epoch {epoch} (lr={tcfg.lr:g}); the model's outputs "
                                       "are not finite: lower the learning rate or enable grad_clip")
        improved = _better(metrics[tcfg.metric], best, tcfg.maximize)
        if improved:
            best, best_epoch = metrics[tcfg.metric], epoch
            for run in runs:
                run.best_state = _cpu_copy(run.model)
        last = _is_last(epoch, best_epoch, tcfg, share)
        snapshot = lambda: _resume_state(epoch, runs, best, best_epoch, history)  # noqa: E731
        if on_epoch is not None and on_epoch(EpochReport(epoch, metrics, improved, runs[0].model, best_epoch, last,
                                                         snapshot)):
            stopped_by = "callback"
            break
        if last:
            stopped_by = "epochs" if epoch == tcfg.epochs else "patience"
            break
    return FitResult(best_epoch, history[best_epoch - 1], runs[0].best_state, history,
                     sum(p.numel() for p in runs[0].model.parameters()), len(history), stopped_by, meta,
                     [run.best_state for run in runs])


def _shares(fractions: list[float] | None, epochs: int) -> list[float]:
    """The share of the training samples of each epoch 1..epochs (all past `fractions`' end)."""
    given = [float(f) for f in fractions or []][:epochs]
    if any(not 0 < f <= 1 for f in given):
        raise ModelError(f"fractions {fractions}: each must be in (0, 1]")
    return given + [1.0] * (epochs - len(given))


def _make_run(mcfg: ModelConfig, tcfg: TrainConfig, task: Task, data: Dataset, dev: torch.device, seed: int,
              share: list[float]) -> _Run:
    torch.manual_seed(seed)  # each fold's model starts as a lone fit of that fold with this seed would
    model = build_model(mcfg, data.info).to(dev)
    set_matmul(model, tcfg.matmul)
    # every user, fewer samples; the same ones for every trial (SUBSET_SEED): a rung compares like with like
    trains = {f: group_subset(data, f, SUBSET_SEED)["train"] for f in sorted(set(share))}
    steps = sum(math.ceil(len(trains[f]) / tcfg.batch_size) for f in share)  # the schedule's whole length
    opt = _optimizer(model, tcfg)
    return _Run(data, model, opt, _scheduler(opt, tcfg, steps), task.loss(tcfg, data),
                np.random.default_rng(seed), trains)


def _run_epoch(run: _Run, tcfg: TrainConfig, task: Task, epoch: int, share: float) -> dict[str, float]:
    start = time.perf_counter()
    train = run.trains[share]
    train_loss, n_seen = _train_epoch(run.model, train, tcfg, run.opt, run.sched, run.loss, run.rng, epoch,
                                      task.class_targets(train))
    train_s = time.perf_counter() - start
    val = task.evaluate(run.model, run.data, "val", run.loss)
    return {"train_loss": train_loss, **{f"val_{k}": v for k, v in val.items()},
            "epoch_s": time.perf_counter() - start, "samples_s": n_seen / train_s}


def _mean(per_run: list[dict[str, float]], metric: str) -> dict[str, float]:
    """Each figure's mean over the folds (itself without folds), plus the metric's std over folds."""
    if len(per_run) == 1:
        return per_run[0]
    out = {k: float(np.mean([m[k] for m in per_run])) for k in per_run[0]}
    out[f"{metric}_std"] = float(np.std([m[metric] for m in per_run]))
    return out


def _cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _resume_state(epoch: int, runs: list[_Run], best, best_epoch: int, history: list) -> dict:
    """What fit(resume=...) needs to continue after `epoch` bit for bit; plain tensors and Python
    values only, so it saves with torch.save and loads with weights_only=True."""
    dev = next(runs[0].model.parameters()).device
    per_run = [copy.deepcopy({"optimizer": r.opt.state_dict(), "scheduler": r.sched.state_dict(),
                              "numpy_rng": r.rng.bit_generator.state})  # the live fit goes on changing these
               for r in runs]
    for r, state in zip(runs, per_run):
        state.update(model=_cpu_copy(r.model), best_state=r.best_state)
    state = {"epoch": epoch, "runs": per_run, "history": copy.deepcopy(history), "torch_rng": torch.get_rng_state(),
             "best": best, "best_epoch": best_epoch, "best_state": runs[0].best_state}
    if dev.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(dev)
    return state


def _restore(state: dict, runs: list[_Run], tcfg: TrainConfig, dev: torch.device, share: list[float]) -> tuple:
    """Load a resume state into the runs; (best, best_epoch, history, first epoch to train)."""
    if len(state["runs"]) != len(runs):
        raise ModelError(f"resume state has {len(state['runs'])} folds, the config {len(runs)}; it is from another config")
    for run, saved in zip(runs, state["runs"]):
        run.model.load_state_dict(saved["model"])
        run.opt.load_state_dict(saved["optimizer"])
        run.sched.load_state_dict(saved["scheduler"])
        run.rng.bit_generator.state = saved["numpy_rng"]  # batch order and sampling of the next epochs
        run.best_state = saved["best_state"]
    torch.set_rng_state(state["torch_rng"])  # dropout
    if dev.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], dev)
    epoch, best_epoch = state["epoch"], state["best_epoch"]
    first = tcfg.epochs + 1 if _is_last(epoch, best_epoch, tcfg, share) else epoch + 1
    return state["best"], best_epoch, list(state["history"]), first


def _is_last(epoch: int, best_epoch: int, cfg: TrainConfig, share: list[float]) -> bool:
    """Max epochs, or `patience` epochs without improvement. With `fit`'s `fractions`, patience acts
    on the largest share alone (all of the data), counting from the best epoch or, where later, the
    last epoch on a smaller share: on a share ASHA's rungs judge a trial, since a plateau on a share
    says little of what all of the data would reach (a trial ended there would be a COMPLETE result
    that never trained on all of it)."""
    if epoch == cfg.epochs:
        return True
    top = max(share)
    if share[epoch - 1] < top:
        return False
    before = max((e for e in range(1, epoch + 1) if share[e - 1] < top), default=0)
    return epoch - max(best_epoch, before) >= cfg.patience


def _train_epoch(model, train: SplitArrays, cfg: TrainConfig, opt, sched, loss_fn: LossFn, rng, epoch: int,
                 classes: np.ndarray | None):
    model.train()
    sample = _balanced_sample(classes, rng) if cfg.sampler == "balanced" else None
    total, seen = 0.0, 0
    device = next(model.parameters()).device
    for b in iter_batches(train, cfg.batch_size, seed=int(rng.integers(2**31)), sample=sample):
        b = b.to(device)
        loss = loss_fn(model(b.seq, b.user, b.lengths), b)
        value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteLoss(f"non-finite training loss ({value}) at epoch {epoch} step {seen // cfg.batch_size + 1} "
                                f"(lr={cfg.lr:g}); lower the learning rate or enable grad_clip")
        opt.zero_grad()
        loss.backward()
        opt.step()  # clips to cfg.grad_clip first
        sched.step()
        total += value * len(b)
        seen += len(b)
    return total / max(seen, 1), seen
