"""A space compiled to an Optuna define-by-run function that proposes budget-checked configs.

The same space always yields the same Optuna parameter names, so the dashboard groups trials.
With a budget and a width parameter, the width is suggested as `<width>_frac` in [0, 1]: the
fraction of the way from the smallest width to the largest one that fits the other choices;
the width itself is stored in the proposal (and by the sweep as a user attribute).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import optuna

from data_io import DatasetInfo
from models import ModelConfig, ModelError
from models.bank_pointer import loss_problem
from models.tasks import TASKS
from models.config import MODEL_KEYS
from spaces.budget import ParamCounter, widest_fit, width_grid
from spaces.facts import FORBIDDEN, OVER_BUDGET, UNBUILDABLE
from spaces.schema import ParamSpec, Space

REJECT_KEY = "params_over_budget"  # Optuna constraint: > 0 means infeasible (c-TPE style); stored in studies


@dataclass
class Proposal:
    config: dict  # flat engine config (model + training keys), ready for models.fit
    n_params: int  # -1 when the engine cannot build the config
    rejected: str | None  # None, OVER_BUDGET, UNBUILDABLE or FORBIDDEN; a rejected proposal never reaches a trainer
    seconds: float = 0.0  # time spent proposing, budget check included
    budget_seconds: float = 0.0  # of which the budget check: fitting the width and counting
    extra: dict = field(default_factory=dict)  # e.g. the fitted width and its upper bound

    @property
    def feasible(self) -> bool:
        return self.rejected is None


def suggest(trial: optuna.Trial, p: ParamSpec):
    if p.kind == "fixed":
        return p.value
    if p.kind == "categorical":
        return trial.suggest_categorical(p.name, p.choices)
    if p.kind == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)


class CompiledSpace:
    """`propose(trial)` samples one configuration. `fit_width=False` gives the naive form (the
    width sampled like any other parameter, over-budget samples left to the caller to reject),
    kept for comparisons."""

    def __init__(self, space: Space, info: DatasetInfo, fit_width: bool = True):
        self.space, self.info = space, info
        self.count = ParamCounter(info)
        self.fit_width = fit_width and space.max_params is not None and space.width is not None

    def base_config(self) -> dict:
        base = {"epochs": self.space.asha.max_epochs, "metric": self.space.metric}
        if self.space.param("loss") is None:
            base["loss"] = TASKS[self.space.task].default_loss
        if self.space.folds:
            base["folds"] = self.space.folds
        return base

    def propose(self, trial: optuna.Trial) -> Proposal:
        start = time.perf_counter()
        config = self.base_config()
        for p in self.space.params:
            if p.active(config) and not (self.fit_width and p.name == self.space.width):
                config[p.name] = suggest(trial, p)
        rule = forbidden_by(self.space.forbid, config)
        if rule is not None:  # never trained, and no count needed
            return Proposal(config, -1, FORBIDDEN, time.perf_counter() - start, 0.0, {"error": f"{FORBIDDEN} by {rule}"})
        problem = loss_problem(bool(config.get("bank_pointer")), config.get("loss"))
        if problem:  # a model key that fixes the loss: never trained, like a config the engine cannot build
            return Proposal(config, -1, UNBUILDABLE, time.perf_counter() - start, 0.0,
                            {"error": f"{UNBUILDABLE}: {problem}"})
        extra = self._fit_width(trial, config) if self.fit_width else {}
        counting = time.perf_counter()
        n = extra.pop("n_min", None) or self.count.safe(config)
        budget_s = extra.pop("budget_s", 0.0) + time.perf_counter() - counting
        if n == math.inf:  # the engine cannot build it (e.g. heads do not divide the width)
            return Proposal(config, -1, UNBUILDABLE, time.perf_counter() - start, budget_s, {"error": _build_error(config)})
        over = self.space.max_params is not None and n > self.space.max_params
        return Proposal(config, int(n), OVER_BUDGET if over else None, time.perf_counter() - start, budget_s, extra)

    def optuna_params(self) -> dict[str, ParamSpec]:
        """The parameters Optuna samples, by the names it stores them under (the fitted width
        as `<width>_frac` in [0, 1])."""
        out = {p.name: p for p in self.space.params if p.kind != "fixed"}
        if self.fit_width:
            del out[self.space.width]
            out[f"{self.space.width}_frac"] = ParamSpec(f"{self.space.width}_frac", "float", 0.0, 1.0)
        return out

    def params_problem(self, params: dict) -> str | None:
        """Why Optuna parameter values (e.g. an exported trial's, to enqueue) cannot come from this
        space: "KEY: reason"; None when every value is one the space could have proposed."""
        specs = self.optuna_params()
        for key, value in params.items():
            if key not in specs:
                return f"{key}: not a parameter the space samples (it samples {', '.join(specs)})"
            problem = outside(specs[key], value)
            if problem:
                return f"{key}: {problem}"
        return None

    def _fit_width(self, trial: optuna.Trial, config: dict) -> dict:
        spec = self.space.param(self.space.width)
        if not spec.active(config):
            return {}
        start = time.perf_counter()
        grid = width_grid(spec, config)
        top = widest_fit(grid, spec.name, config, self.space.max_params, self.count) if grid else -1
        if top < 0:  # even the smallest width is over budget: the other choices are infeasible
            n_min = self.count.safe({**config, spec.name: grid[0]}) if grid else math.inf
            return {"n_min": n_min, "budget_s": time.perf_counter() - start}
        budget_s = time.perf_counter() - start
        frac = trial.suggest_float(f"{spec.name}_frac", 0.0, 1.0)
        config[spec.name] = grid[round(frac * top)]
        return {"width_max": grid[top], "frac": frac, "budget_s": budget_s}


def outside(p: ParamSpec, value) -> str | None:
    """Why `value` is not one the parameter can take, or None."""
    if p.kind == "categorical":
        ok = any(c == value and isinstance(c, bool) == isinstance(value, bool) for c in p.choices)
        return None if ok else f"{value!r} is not one of its choices {p.choices}"
    kind = int if p.kind == "int" else (int, float)
    if not isinstance(value, kind) or isinstance(value, bool):
        return f"{value!r} is not {'an integer' if p.kind == 'int' else 'a number'}"
    if not p.low <= value <= p.high:
        return f"{value!r} is outside its range [{p.low}, {p.high}]"
    if p.step and not math.isclose((value - p.low) / p.step, round((value - p.low) / p.step), abs_tol=1e-8):
        return f"{value!r} is not on its grid (low {p.low}, step {p.step})"
    return None


def forbidden_by(rules: list[dict[str, list]], config: dict) -> dict | None:
    """The first forbid rule every key of which the config matches, or None."""
    for rule in rules:
        if all(k in config and config[k] in values for k, values in rule.items()):
            return rule
    return None


def _build_error(config: dict) -> str:
    """The engine's own message for a config it cannot build."""
    try:
        ModelConfig(**{k: v for k, v in config.items() if k in MODEL_KEYS}).check()
    except ModelError as exc:
        return f"{UNBUILDABLE}: {exc}"
    return UNBUILDABLE


def record_rejection(trial: optuna.Trial, proposal: Proposal, max_params: int | None) -> None:
    """Mark a rejected proposal on its Optuna trial with a constraint value that lets TPE learn
    which structural choices cannot fit: how far over budget, relative to the budget; 1.0 for a
    config the engine cannot build (e.g. heads not dividing the width), with or without a budget."""
    if proposal.rejected == OVER_BUDGET:
        trial.set_constraint(REJECT_KEY, (proposal.n_params - max_params) / max_params)
    else:  # unbuildable or forbidden: infeasible whatever the width
        trial.set_constraint(REJECT_KEY, 1.0)
        trial.set_user_attr("error", proposal.extra.get("error", UNBUILDABLE))
    trial.set_user_attr("rejected", proposal.rejected)
    trial.set_user_attr("n_params", proposal.n_params)
