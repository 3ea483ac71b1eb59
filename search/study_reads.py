"""How the results commands (status, export, report) read a large study: a sweep stores ~18
user attributes a trial, and 50,000 trials read whole took 4.6 s. They read the few attributes
they show (trials_showing), count over the whole study in the database (outcome_groups,
step_peaks, time_span: search/internals/rdb_summaries.py), and read whole only the trials they
print (whole_trials, trials_by_id). Where nextsweep's SQL does not run (an untested Optuna, an
in-memory study), each falls back to Optuna's own trials, read whole."""

from __future__ import annotations

import datetime
import math
from collections.abc import Collection, Container

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.storage import core_rdb
from search.storage_retry import retried


def trials_showing(study: optuna.Study, shows: Collection[str], states: Container[TrialState] | None = None,
                   params: bool = False, steps: bool = False) -> list[FrozenTrial]:
    """The trials of `study` in `states` (None: all), by number, holding only the user attributes
    `shows` (and the params and curves if asked; never system attributes), read past Optuna's
    cache."""
    rdb = core_rdb(study._storage)
    if rdb is None:
        return study.get_trials(deepcopy=False, states=states)
    from search.internals.rdb import Fields
    fields = Fields(user=frozenset(shows), params=params, system=False, steps=steps)
    return sorted(retried(rdb.read_fields)(study._study_id, states, fields), key=lambda t: t.number)


def whole_trials(study: optuna.Study, trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """`trials` of `study` with every field (read again: trials_showing() cut them), in order."""
    rdb = core_rdb(study._storage)
    if rdb is None or not trials:
        return trials
    return trials_by_id(study, [t._trial_id for t in trials])


def trials_by_id(study: optuna.Study, trial_ids: list[int]) -> list[FrozenTrial]:
    """The trials `trial_ids` of `study`, whole, in that order."""
    rdb = core_rdb(study._storage)
    if rdb is None:
        by_id = {t._trial_id: t for t in study.get_trials(deepcopy=False)}
    else:
        by_id = {t._trial_id: t for t in retried(rdb.read_whole)(trial_ids)}
    return [by_id[i] for i in trial_ids]


def outcome_groups(study: optuna.Study, prefix: str) -> list[tuple] | None:
    """search/internals/rdb_summaries.py's outcome_groups of `study` (search.outcomes.study_tally),
    or None where nextsweep's SQL does not run."""
    rdb = core_rdb(study._storage)
    if rdb is None:
        return None
    from search.internals import rdb_summaries
    return retried(rdb_summaries.outcome_groups)(rdb, study._study_id, prefix)


def step_peaks(study: optuna.Study) -> list[tuple[int, int, float | None]]:
    """(trial id, number, best finite intermediate value in the study's direction, None if none)
    of each trial that reported one, by number: which learning curves the report draws."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    rdb = core_rdb(study._storage)
    if rdb is not None:
        from search.internals import rdb_summaries
        return retried(rdb_summaries.step_peaks)(rdb, study._study_id, maximize)
    best = max if maximize else min
    return [(t._trial_id, t.number, best((v for v in t.intermediate_values.values() if math.isfinite(v)), default=None))
            for t in study.get_trials(deepcopy=False) if t.intermediate_values]


def time_span(study: optuna.Study) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    """When the study's first trial started and its last one ended (local time; None: none has)."""
    rdb = core_rdb(study._storage)
    if rdb is not None:
        from search.internals import rdb_summaries
        return retried(rdb_summaries.time_span)(rdb, study._study_id)
    trials = study.get_trials(deepcopy=False)
    return (min((t.datetime_start for t in trials if t.datetime_start), default=None),
            max((t.datetime_complete for t in trials if t.datetime_complete), default=None))
