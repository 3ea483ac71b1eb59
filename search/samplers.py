"""The Optuna samplers a sweep may use: the factory (make_sampler), its checks, and the start-up
rounds, a wrapper sampler (as Optuna's PartialFixedSampler wraps another) that gives TPE's random
start-up every choice of a categorical parameter. TPE itself is the column TPE where the version
guard allows it (search/internals/tpe.py), else Optuna's TPESampler: the same suggestions, and the
rounds wrap either."""

from __future__ import annotations

import functools
import inspect
import zlib

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from search.internals import compat
from search.errors import SearchError

OPTUNA_SAMPLERS = ("tpe", "random", "cmaes", "qmc", "gp")  # --sampler
STARTUP_SAMPLERS = ("tpe", "cmaes", "gp")  # the samplers with a random start-up
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what TPE's start-up counts
_STARTUP_CLASSES = {"tpe": optuna.samplers.TPESampler, "cmaes": optuna.samplers.CmaEsSampler,
                    "gp": optuna.samplers.GPSampler}


def startup_count(name: str, startup: int | None) -> int | None:
    """The random start-up trials of sampler `name` (--startup-trials, else Optuna's default);
    None for a sampler without one."""
    if name not in STARTUP_SAMPLERS:
        return None
    return startup or inspect.signature(_STARTUP_CLASSES[name]).parameters["n_startup_trials"].default


def resumed_seed(name: str, seed: int, n_trials: int) -> int:
    """The sampler seed for a study that already holds n_trials: a fresh stream on every resume,
    so TPE's random start-up (and the random sampler) do not propose the first configs again (TPE's
    categorical rounds keep the sweep's seed and go on: make_sampler's `rounds_seed`).
    QMC keeps its seed: its sequence position lives in the study, and a new scramble would repeat it.
    Within NumPy's seeds (< 2**32: a resume past 4,294 trials crashed there)."""
    return seed if name == "qmc" or n_trials == 0 else (seed + 1_000_003 * n_trials) % 2**32


def check_startup(name: str, startup: int | None) -> None:
    if startup is not None and (name not in STARTUP_SAMPLERS or startup < 1):
        raise SearchError(f"--startup-trials {startup}: " + ("use 1 or more" if name in STARTUP_SAMPLERS else
                          f"--sampler {name} has no random start-up; use it with {', '.join(STARTUP_SAMPLERS)}"))


def make_sampler(name: str, seed: int, startup: int | None = None, cover_startup: bool = True,
                 rounds_seed: int | None = None) -> BaseSampler:
    """`cover_startup`: TPE in StartupRounds, seeded by `rounds_seed` (default: `seed`; the sweep's
    own on a resume)."""
    check_startup(name, startup)
    kw = {} if startup is None else {"n_startup_trials": startup}
    if name == "tpe":  # constant liar: concurrent trials do not all get the same suggestion
        tpe = _tpe(seed, kw)
        if not cover_startup:
            return tpe
        n_startup = startup_count("tpe", startup)  # (TPE's default: 10)
        return StartupRounds(tpe, n_startup, seed if rounds_seed is None else rounds_seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False, **kw)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, **kw)
    raise SearchError(f"--sampler {name!r}: use one of {', '.join(OPTUNA_SAMPLERS)}")


def _tpe(seed: int, kw: dict) -> BaseSampler:
    """ColumnTPE (built on TPE's private internals) where compat allows it, else Optuna's own
    TPESampler: the same suggestions, slower."""
    if compat.optuna_fast():
        from search.internals.tpe import ColumnTPE  # imported here: its private Optuna imports may not exist elsewhere
        return ColumnTPE(seed=seed, multivariate=True, constant_liar=True, **kw)
    compat.warn_once("tpe", "--sampler tpe: Optuna's stock TPESampler runs (the Optuna fast paths are off): the same "
                            "suggestions, start-up rounds included, slower on large studies")
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True, **kw)


class StartupRounds(BaseSampler):
    """`base` (a TPE), except that in its random start-up (fewer than `n_startup_trials` COMPLETE or
    PRUNED trials) each categorical parameter's draws go through its choices in a seeded random
    order, each choice once per round, instead of independently. So a start-up of at least k
    trials tries every one of a k-way choice (the model family): TPE is slow to try a choice it has
    not seen (bench/startup_coverage.py). The rounds are seeded by `seed` and go on past the draws
    the study already holds, so a sweep resumed mid start-up with a fresh sampler seed finishes
    its round instead of starting a new one. Every other draw is the base's own, from its own
    random stream: a round's draw takes nothing from it."""

    def __init__(self, base: BaseSampler, n_startup_trials: int, seed: int | None) -> None:
        self.base, self.n_startup_trials = base, n_startup_trials
        self.rounds = _Rounds(seed)
        self.past_startup: set[str] = set()  # studies (by name) past it: finished trials stay finished

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict:
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution):
        if isinstance(param_distribution, CategoricalDistribution) and self._in_startup(study):
            drawn = functools.partial(_drawn, study, trial, param_name, param_distribution)
            return self.rounds.draw(param_name, param_distribution, drawn)
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()

    def _in_startup(self, study: optuna.Study) -> bool:
        if study.study_name in self.past_startup:
            return False
        if len(study.get_trials(deepcopy=False, states=FINISHED)) < self.n_startup_trials:
            return True
        self.past_startup.add(study.study_name)
        return False


def _drawn(study: optuna.Study, trial: FrozenTrial, name: str, dist: BaseDistribution) -> int:
    """How many of the study's other trials drew this parameter from this distribution. An
    enqueued trial's fixed value (Optuna's "fixed_params", --enqueue) was never drawn: counted,
    it would take a draw of the rounds and leave a choice out of the sampler's own."""
    return sum(t.number != trial.number and t.distributions.get(name) == dist
               and name not in t.system_attrs.get("fixed_params", {})
               for t in study.get_trials(deepcopy=False))


class _Rounds:
    """Categorical draws in rounds: each round a seeded permutation of a parameter's choices. On a
    parameter's first draw, `drawn()` says how many draws the study holds already (a resume): the
    rounds skip those, so they replay the draws of a sampler with the same seed."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self.left: dict[tuple, list] = {}
        self.rounds: dict[tuple, int] = {}

    def draw(self, name: str, dist: CategoricalDistribution, drawn=lambda: 0):
        key = (name, dist.choices)
        if key not in self.rounds:  # the first draw: skip those the study holds
            done, into = divmod(drawn() if self.seed is not None else 0, len(dist.choices))
            self.rounds[key] = done if into else done - 1
            if into:  # round `done` is under way; pop() takes from the end
                self.left[key] = self._round(name, dist, done)[:len(dist.choices) - into]
        if not self.left.get(key):
            n = self.rounds[key] = self.rounds[key] + 1
            self.left[key] = self._round(name, dist, n)
        return self.left[key].pop()

    def _round(self, name: str, dist: CategoricalDistribution, n: int) -> list:
        rng = np.random.default_rng(None if self.seed is None else [self.seed, zlib.crc32(name.encode()), n])
        return [dist.choices[i] for i in rng.permutation(len(dist.choices))]
