"""The budget planner: what a time budget buys, said before the first trial.

A probe trains PROBE_CONFIGS configurations of each model family of the space (as the space
proposes them, the width fitted to the budget) for two epochs on a small seeded subset of the
real data (the same share of every user's samples, about PROBE_BATCHES batches of train, the
same share of val), with the trial's threads. The second epoch's wall time, scaled to the full
splits, is a full epoch's cost; the first epoch's excess over it is a trial's start-up; each
family's figures are the mean over its configurations (widths and depths vary a trial's cost
several-fold: one configuration a family over-counted Geolife 500K's trials 2.3 x). ASHA's settings give the
epochs an average trial runs (every trial to the first rung, 1/rf of them on to the next, ...),
and the time budget, the trials at once and those give the configurations the sweep examines.
Where that is under STARTUP_MULTIPLE x the sampler's random start-up trials, the search would end
before its model ever proposes much: the sweep and `space check` say so, with what to change.
With asha.fidelity data an epoch's training costs its share of the data (search.asha.data_fractions)
and its validation the whole split: the probe times the two apart. A simulated sweep's epoch costs
its --epoch-seconds (times its share): no probe.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import optuna

from data_io.folds import group_subset
from models import ModelError, fit
from search.asha import asha_signature, cheaper_left_off, rungs
from search.retrain import torch_threads
from search.study_record import fractions_of
from spaces import CompiledSpace

PROBE_BATCHES = 8  # training batches of the probe's epoch
PROBE_CONFIGS = 3  # configurations timed per family
PROBE_PROPOSALS = 300  # random proposals searched for them
STARTUP_MULTIPLE = 3  # warn below this many times the sampler's start-up trials


@dataclass
class Plan:
    epoch_s: dict[str, float]  # family -> a full epoch (train and val), seconds
    start_s: dict[str, float]  # family -> a trial's start-up (model build, first batches), seconds
    epochs_per_trial: float  # the epochs an average trial runs under ASHA
    slots: int  # trials at once
    budget_s: float | None  # the sweep's time budget (None: none given)
    startup: int | None  # the sampler's random start-up trials (None: it has none)
    train_share: dict[str, float] | None = None  # family -> the share of an epoch spent training (None: all)
    data_epochs: float | None = None  # asha.fidelity data: an average trial's epochs weighted by their data share
    cheaper: tuple[str, ...] = ()  # ASHA options the space does not use that make an average trial cheaper

    @property
    def trial_s(self) -> float:
        """An average trial's seconds (families equally likely, as random start-up draws them)."""
        return statistics.mean(self._epochs(f) * self.epoch_s[f] + self.start_s[f] for f in self.epoch_s)

    def _epochs(self, family: str) -> float:
        """Full epochs' worth of one trial of `family`: with data fidelity its training shrinks
        with the data share, its validation does not."""
        if self.data_epochs is None:
            return self.epochs_per_trial
        share = (self.train_share or {}).get(family, 1.0)
        return share * self.data_epochs + (1 - share) * self.epochs_per_trial

    @property
    def trials(self) -> int | None:
        """Configurations the time budget lets the sweep examine (None: no budget)."""
        return None if self.budget_s is None else int(self.budget_s * self.slots / self.trial_s)

    def lines(self) -> list[str]:
        costs = ", ".join(f"{f} {self.epoch_s[f]:.1f} s" for f in sorted(self.epoch_s))
        data = (f" (with data fidelity's shares, {self.data_epochs:.1f} epochs' worth of training)"
                if self.data_epochs is not None else "")
        out = [f"an epoch takes {costs}; a trial runs {self.epochs_per_trial:.1f} epochs on average under ASHA"
               f"{data} (~{self.trial_s:.0f} s), {self.slots} at once"]
        if self.trials is not None:
            out.append(f"the time budget ({_duration(self.budget_s)}) lets the search examine about {self.trials} "
                       "configurations")
        return out

    def warning(self) -> str | None:
        """What to change where the budget fits too few trials for the sampler to leave its start-up."""
        if self.trials is None or self.startup is None or self.trials >= STARTUP_MULTIPLE * self.startup:
            return None
        need = STARTUP_MULTIPLE * self.startup * self.trial_s / self.slots
        options = "".join(f"; {c}" for c in self.cheaper)
        return (f"the time budget fits about {self.trials} trials, under {STARTUP_MULTIPLE} x the sampler's "
                f"{self.startup} random start-up trials: the search would end before it learns much. Make trials "
                "cheaper (a lower asha.grace_period: every trial runs it; fewer asha.max_epochs; a smaller "
                f"budget{options}), or raise --time-budget to about {_duration(need)}")


def expected_epochs(max_epochs: int, grace: int, rf: float, fractions: list[float] | None = None) -> float:
    """Epochs an average trial runs: all reach the first rung, 1/rf of those the next one, ...,
    1/rf**K of them max_epochs (ASHA's promotion rate, without early stopping). With `fractions`
    each epoch counts its share of the data."""
    marks = [r for r in rungs(max_epochs, grace, rf) if r < max_epochs]
    share = list(fractions or [])
    return sum(rf ** -sum(m < e for m in marks) * (share[e - 1] if e <= len(share) else 1.0)
               for e in range(1, max_epochs + 1))


def probe(compiled: CompiledSpace, data, threads: int, seed: int = 0) -> tuple[dict[str, float], ...]:
    """(family -> full epoch seconds, -> start-up seconds, -> the share of an epoch spent
    training), timed on the real data."""
    epoch_s, start_s, train_share = {}, {}, {}
    with torch_threads(max(1, int(threads))):
        for family, configs in family_configs(compiled, seed).items():
            timed = [t for t in (_time_two_epochs(config, data, seed) for config in configs) if t is not None]
            if timed:
                epoch_s[family], start_s[family], train_share[family] = (statistics.mean(t[i] for t in timed)
                                                                          for i in range(3))
    return epoch_s, start_s, train_share


def family_configs(compiled: CompiledSpace, seed: int, per_family: int = PROBE_CONFIGS) -> dict[str, list[dict]]:
    """Up to `per_family` feasible configurations of each family, as the space proposes them at random."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    family = compiled.space.param("family")
    wanted = (len(family.choices) if family is not None and family.kind == "categorical" else 1) * per_family
    found: dict[str, list[dict]] = {}
    for _ in range(PROBE_PROPOSALS):
        trial = study.ask()
        p = compiled.propose(trial)
        study.tell(trial, 0.0)
        kept = found.setdefault(str(p.config.get("family", "model")), [])
        if p.feasible and len(kept) < per_family:
            kept.append({**p.config, "seed": seed})
        if sum(map(len, found.values())) == wanted:
            break
    return {f: configs for f, configs in found.items() if configs}


def _time_two_epochs(config: dict, data, seed: int) -> tuple[float, float, float] | None:
    """(full epoch seconds, start-up seconds, the share of the epoch spent training) of `config`;
    None where its probe fit fails (a diverging learning rate on the small subset, say): the plan
    goes on without it."""
    n_train, n_val = len(data["train"]), len(data["val"])
    share = min(1.0, PROBE_BATCHES * int(config.get("batch_size", 64)) / max(n_train, 1))
    small = group_subset(data, share, seed, ("train", "val"))
    marks, reports = [time.perf_counter()], []

    def timed(rep) -> None:
        marks.append(time.perf_counter())
        reports.append(rep.metrics)
    try:
        fit({**config, "epochs": 2, "patience": 2}, small, on_epoch=timed)
    except (ModelError, RuntimeError):
        return None
    first = marks[1] - marks[0]
    second = marks[2] - marks[1] if len(marks) > 2 else first
    last = reports[-1]
    train_s = len(small["train"]) / max(last.get("samples_s", 0.0), 1e-9)
    # scaled to the full splits: the training part by train's samples, validation by val's
    train_scale, val_scale = n_train / max(1, len(small["train"])), n_val / max(1, len(small["val"]))
    train_full = min(train_s, second) * train_scale
    val_full = max(0.0, second - train_s) * val_scale
    full = train_full + val_full
    return full, max(0.0, first - second), train_full / full if full > 0 else 1.0


def plan_budget(compiled: CompiledSpace, data, *, slots: int, threads: float, budget_s: float | None,
                startup: int | None, epoch_seconds: float | None = None, seed: int = 0) -> Plan | None:
    """The plan of a sweep over `compiled` (None where no configuration could be timed);
    `epoch_seconds` (a simulated sweep's) skips the probe."""
    a = compiled.space.asha
    if epoch_seconds is not None:  # a simulated epoch sleeps its data share of epoch_seconds
        families = family_configs(compiled, seed, per_family=1) or {"model": []}
        epoch_s, start_s = dict.fromkeys(families, float(epoch_seconds)), dict.fromkeys(families, 0.0)
        train_share = dict.fromkeys(families, 1.0)
    else:
        epoch_s, start_s, train_share = probe(compiled, data, math.ceil(threads), seed)
    if not epoch_s:
        return None
    fractions = fractions_of(a)
    weighted = None if fractions is None else expected_epochs(a.max_epochs, a.grace_period, a.reduction_factor,
                                                               list(fractions))
    return Plan(epoch_s, start_s, expected_epochs(a.max_epochs, a.grace_period, a.reduction_factor),
                max(1, slots), budget_s, startup, train_share, weighted, cheaper_options(a))


def cheaper_options(a) -> tuple[str, ...]:
    """The ASHA options (spaces.schema.Asha) that `a` leaves off and that cut an average trial's cost."""
    return tuple(f"{setting}, {why}" for setting, why in cheaper_left_off(asha_signature(a)[3:]))


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f}m" if seconds >= 120 else f"{seconds:.0f}s"
