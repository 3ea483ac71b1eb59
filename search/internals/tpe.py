"""Optuna's TPE with its history kept as columns.

Stock `TPESampler._sample` walks every trial of the study in Python, once to split them into
"below" and "above" and once per Parzen estimator to read the parameters, and it does so for
the relative sample and again for each parameter sampled independently (conditional ones):
at 5,000 finished trials that is ~150 ms a suggestion. `ColumnTPE` reads each finished trial
once into numpy columns (its split key and each parameter's internal value) and does the split
and the lookups with array operations. The splits, the estimators and the random stream are
Optuna's own, so it suggests exactly what `TPESampler` suggests with the same seed and history
(tests/test_tpe.py); only single-objective studies take the fast path. One departure, past
10,000 finished trials: the "above" (not good) estimator keeps the ABOVE_MAX most recent of them
rather than all (Optuna's own weights already favour the recent ones), so a suggestion's cost
stops growing with the study (at 50,000 trials every candidate was scored against 50,000
kernels); the "below" (good) ones are still the best of the whole study.

The history is read once per asked trial, from Optuna's per-trial cache of the study (stock TPE
reads it twice more with constant liar, for the search space and for the running trials): a
trial that finishes while another one's define-by-run function runs is seen from the next trial
on. The relative search space (Optuna's intersection of the finished trials' distributions) is
kept up to date from the same read, and the mixtures' densities come from parzen.py.

Both modules are built on TPE's private internals: the sweep makes a ColumnTPE only where
`compat.optuna_fast()` says the installed Optuna is the tested one (search/samplers.py,
make_sampler), and imports this module only then. The start-up rounds are not here: they wrap
either TPE (search/samplers.py, StartupRounds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.storages._cached_storage import _CachedStorage
from optuna.samplers import TPESampler
from optuna.samplers._tpe.sampler import _get_infeasible_trial_score, default_gamma
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search.internals.parzen import ColumnParzen, mixture_log_pdf

ABOVE_MAX = 10_000  # the "above" estimator's kernels at most: the most recent trials
COMPLETE, PRUNED, INFEASIBLE = 0, 1, 2  # the groups _split_trials fills "below" from, in order
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _by_number(study: Study) -> Mapping[int, FrozenTrial] | list[FrozenTrial]:
    """The study's trials, trials[n] the one numbered n. From Optuna's cache of the study where it
    holds them (synced first, as get_all_trials syncs): get_all_trials sorts every trial by
    number on each call, 70 ms of each suggestion at 50,000 trials, where only the new ones are read."""
    storage = study._storage
    storage = getattr(storage, "_storage", storage)  # a draft's storage (draft.py) wraps the study's
    if isinstance(storage, _CachedStorage):
        storage._read_trials_from_remote_storage(study._study_id)
        with storage._lock:
            cached = storage._studies[study._study_id].trials  # number -> trial
            if len(cached) == 0 or (0 in cached and len(cached) - 1 in cached):  # numbers 0..n-1, none missing
                return cached
    return study._get_trials(deepcopy=False, use_cache=True)


class _History:
    """The study's finished (COMPLETE / PRUNED) trials as columns, in the order they were read."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.settled = 0  # the study's first trials (by number) that are finished and read: not walked again
        self.params: list[dict] = []
        self.number, self.group, self.key1, self.key2 = [], [], [], []
        self.columns: dict[tuple[str, BaseDistribution], np.ndarray] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.space: dict[str, BaseDistribution] | None = None  # distributions every trial has
        self.splits: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # n_below -> (below, above)

    def add(self, trial: FrozenTrial, maximize: bool) -> None:
        self.seen.add(trial._trial_id)
        self.params.append(trial.params)
        self.number.append(trial.number)
        score = _get_infeasible_trial_score(trial)
        if score > 0:  # as Optuna's _split_trials: infeasible before the state is looked at
            group, key1, key2 = INFEASIBLE, score, 0.0
        elif trial.state == TrialState.COMPLETE:
            group, key1, key2 = COMPLETE, (-trial.value if maximize else trial.value), 0.0
        elif trial.intermediate_values:  # _get_pruned_trial_score: the latest step first
            step, value = max(trial.intermediate_values.items())
            group, key1 = PRUNED, -step
            key2 = math.inf if math.isnan(value) else (-value if maximize else value)
        else:
            group, key1, key2 = PRUNED, 1.0, 0.0
        self.group.append(group)
        self.key1.append(key1)
        self.key2.append(key2)
        self.arrays.clear()
        self.splits.clear()
        if self.space is None:
            self.space = dict(trial.distributions)
        else:
            self.space = {name: d for name, d in self.space.items() if trial.distributions.get(name) == d}

    def array(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            self.arrays[name] = np.asarray(getattr(self, name), dtype=float)
        return self.arrays[name]

    def column(self, name: str, dist: BaseDistribution) -> np.ndarray:
        """Internal values of one parameter, NaN where a trial does not have it."""
        col = self.columns.get((name, dist), np.empty(0))
        if len(col) < len(self.params):
            new = [dist.to_internal_repr(p[name]) if name in p else math.nan for p in self.params[len(col):]]
            col = self.columns[(name, dist)] = np.concatenate([col, np.asarray(new, dtype=float)])
        return col


class ColumnTPE(TPESampler):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._parzen_estimator_cls = ColumnParzen
        self._history = _History()
        self._read_for: tuple[int, int] | None = None  # (study id, trial number) last read for
        self._running: list[FrozenTrial] = []

    def __getstate__(self) -> dict:
        """Pickled (Tune saves its searcher) without the history: a cache of the study, read
        again on the next suggestion."""
        state = self.__dict__.copy()
        state.update(_history=_History(), _read_for=None, _running=[])
        return state

    def _refresh(self, study: Study, trial: FrozenTrial) -> None:
        if self._read_for == (study._study_id, trial.number):
            return
        if self._read_for is not None and self._read_for[0] != study._study_id:
            self._history = _History()
        self._read_for = (study._study_id, trial.number)
        maximize = study.direction == StudyDirection.MAXIMIZE
        self._running = []
        h = self._history
        trials = _by_number(study)  # filled afresh for each asked trial
        for number in range(h.settled, len(trials)):  # a finished trial stays finished
            t = trials[number]
            if t.state == TrialState.RUNNING:
                if self._constant_liar and t.number != trial.number:
                    self._running.append(t)
            elif t.state in FINISHED and t._trial_id not in h.seen:
                h.add(t, maximize)
        while h.settled < len(trials) and trials[h.settled].state.is_finished():
            h.settled += 1

    def _split(self, n_below: int) -> tuple[np.ndarray, np.ndarray]:
        """(below, above) row indices of the history, each in trial-number order."""
        h = self._history
        if n_below not in h.splits:
            h.splits[n_below] = self._ranked_split(n_below)
        return h.splits[n_below]

    def _ranked_split(self, n_below: int) -> tuple[np.ndarray, np.ndarray]:
        h = self._history
        number, key1 = h.array("number"), h.array("key1")
        complete = np.flatnonzero(h.array("group") == COMPLETE)
        cut = np.partition(key1[complete], n_below - 1)[n_below - 1] if 0 < n_below < len(complete) else math.nan
        if not math.isnan(cut):  # "below" is COMPLETE trials alone: sort only those that can be in it
            maybe = complete[key1[complete] <= cut]
            below = maybe[np.lexsort((number[maybe], key1[maybe]))][:n_below]  # as the full sort: ties by number
            rest = np.ones(len(number), dtype=bool)
            rest[below] = False
            above = np.flatnonzero(rest)
            return below[np.argsort(number[below], kind="stable")], above[np.argsort(number[above], kind="stable")]
        by_number = np.argsort(h.array("number"), kind="stable")
        group, key1, key2 = h.array("group")[by_number], h.array("key1")[by_number], h.array("key2")[by_number]
        ranked = []
        for g in (COMPLETE, PRUNED, INFEASIBLE):
            rows = np.flatnonzero(group == g)
            order = np.lexsort((key2[rows], key1[rows])) if g == PRUNED else np.argsort(key1[rows], kind="stable")
            ranked.append(by_number[rows[order]])
        ranked = np.concatenate(ranked)
        below, above = ranked[:n_below], ranked[n_below:]
        number = h.array("number")
        return below[np.argsort(number[below], kind="stable")], above[np.argsort(number[above], kind="stable")]

    def _observations(self, rows: np.ndarray, running: list[FrozenTrial], study: Study,
                      search_space: dict[str, BaseDistribution]) -> dict[str, np.ndarray]:
        h = self._history
        cols = {name: h.column(name, dist)[rows] for name, dist in search_space.items()}
        keep = np.ones(len(rows), dtype=bool)
        for col in cols.values():
            keep &= ~np.isnan(col)
        # constant liar: running trials join "above" with the params they have
        live = [(t.number, p) for t in running if search_space.keys() <= (p := self._get_params(t, study)).keys()]
        order = np.argsort(np.concatenate([h.array("number")[rows][keep], [n for n, _ in live]]), kind="stable")
        return {name: np.concatenate([cols[name][keep], [dist.to_internal_repr(p[name]) for _, p in live]])[order]
                for name, dist in search_space.items()}

    # TPESampler's entry points, without their own walk over every trial to count the history.
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        """As TPESampler's (its IntersectionSearchSpace over COMPLETE and PRUNED trials, sorted,
        single-valued ones left out), from the history instead of another walk of the study."""
        if study._is_multi_objective() or self._group or not self._is_multivariate(study):
            return super().infer_relative_search_space(study, trial)
        self._refresh(study, trial)
        space = self._history.space or {}
        return {name: d for name, d in sorted(space.items()) if not d.single()}

    def _sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict:
        if study._is_multi_objective():
            return super()._sample_relative(study, trial, search_space)
        if search_space == {} or not self._started(study, trial):
            return {}
        return self._sample(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution):
        if study._is_multi_objective() or self._warn_independent_sampling:
            return super().sample_independent(study, trial, param_name, param_distribution)
        if not self._started(study, trial):
            return self._random_sampler.sample_independent(study, trial, param_name, param_distribution)
        return self._sample(study, trial, {param_name: param_distribution})[param_name]

    def _started(self, study: Study, trial: FrozenTrial) -> bool:
        """Past the random start-up: at least n_startup_trials COMPLETE or PRUNED trials."""
        self._refresh(study, trial)
        return len(self._history.number) >= self._n_startup_trials

    def _sample(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict:
        if study._is_multi_objective():
            return super()._sample(study, trial, search_space)
        self._refresh(study, trial)
        if self._gamma is None:  # as TPESampler sets it for a single objective
            self._gamma = default_gamma
        below, above = self._split(self._gamma(len(self._history.number)))
        above = above[-ABOVE_MAX:]  # by trial number: the most recent (module docstring)
        mpe_below = self._parzen_estimator_cls(self._observations(below, [], study, search_space), search_space,
                                               self._parzen_estimator_parameters)
        mpe_above = self._parzen_estimator_cls(self._observations(above, self._running, study, search_space),
                                               search_space, self._parzen_estimator_parameters)
        samples = mpe_below.sample(self._rng.rng, self._n_ei_candidates)
        ret = TPESampler._compare(samples, self._compute_acquisition_func(samples, mpe_below, mpe_above))
        return {name: dist.to_external_repr(ret[name]) for name, dist in search_space.items()}

    def _compute_acquisition_func(self, samples: dict[str, np.ndarray], mpe_below, mpe_above) -> np.ndarray:
        below = mixture_log_pdf(mpe_below._mixture_distribution, mpe_below._transform(samples))
        return below - mixture_log_pdf(mpe_above._mixture_distribution, mpe_above._transform(samples))

