"""`nextsweep space check`: what a space contains, its parameter-count range, and how much of
it fits the budget (Monte-Carlo over random proposals, with and without width fitting)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import optuna

from data_io import DatasetInfo
from spaces.budget import ParamCounter, check_feasible, count_range
from spaces.compile import CompiledSpace
from spaces.schema import Space


@dataclass
class CheckReport:
    n_min: float
    min_config: dict
    n_max: float
    max_config: dict
    samples: int
    feasible_fitted: float  # share of random proposals that fit, width fitted to the budget
    feasible_naive: float  # the same with the width drawn uniformly from its range
    median_ms: float  # per proposal, budget check included


def monte_carlo(space: Space, info: DatasetInfo, samples: int, seed: int, fit_width: bool):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    compiled = CompiledSpace(space, info, fit_width=fit_width)
    proposals = []
    for _ in range(samples):
        trial = study.ask()
        proposals.append(compiled.propose(trial))
        study.tell(trial, 0.0)
    return proposals


def check_space(space: Space, info: DatasetInfo, samples: int = 300, seed: int = 0) -> CheckReport:
    counter = ParamCounter(info)
    check_feasible(space, counter)
    (n_min, cmin), (n_max, cmax) = count_range(space, counter)
    fitted = monte_carlo(space, info, samples, seed, True)
    naive = monte_carlo(space, info, samples, seed, False)
    share = lambda ps: sum(p.feasible for p in ps) / len(ps)
    return CheckReport(n_min, cmin, n_max, cmax, samples, share(fitted), share(naive),
                       1000 * statistics.median(p.seconds for p in fitted))


def describe_param(p) -> str:
    if p.kind == "fixed":
        text = f"= {p.value!r}"
    elif p.kind == "categorical":
        text = "one of " + ", ".join(map(str, p.choices))
    else:
        text = f"{p.kind} {p.low:g}..{p.high:g}" + (f" step {p.step:g}" if p.step else "") + (" log" if p.log else "")
    if p.when:
        text += "  when " + ", ".join(f"{k} in {v}" for k, v in p.when.items())
    return text
