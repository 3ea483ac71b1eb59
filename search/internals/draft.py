"""A trial sampled in memory and written to the study once, with its parameters and attributes.

`study.ask()` stores an empty trial and then each suggested parameter in its own transaction
(~60 statements per suggestion, each a round trip on PostgreSQL). A `DraftTrial` runs Optuna's own
suggestion code (`Trial._suggest`: fixed, single-valued, relative, then independent sampling) with
the per-parameter write deferred, and `commit()` creates the trial with everything in one
transaction. It relies on optuna.Trial's private layout (pinned: optuna 5.0.0): where
compat.py says the Optuna fast paths may not run, `DraftTrial(study)` is an `AskedTrial`,
Optuna's own study.ask() trial with the same commit().
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable

import optuna
from optuna import pruners
from optuna.distributions import check_distribution_compatibility
from optuna.trial import FrozenTrial, TrialState

from search.internals import compat
from search.storage import insert_trials, set_trial_attrs

DRAFT_ID = -1  # the trial id a draft has until commit()
_drafts = itertools.count(1)  # drafts are numbered -1, -2, ... until commit()


class _DraftStorage:
    """The study's storage, except that what would be written to the draft goes to its frozen
    copy until commit(): Trial's parameters and user attributes (Trial keeps its own copy of those),
    its constraints, and the relative parameters TPE's constant liar shares as system attributes."""

    def __init__(self, storage, frozen: FrozenTrial):
        self._storage, self.frozen = storage, frozen

    def __getattr__(self, name):
        return getattr(self._storage, name)

    def set_trial_param(self, trial_id, *args) -> None:
        if trial_id != DRAFT_ID:
            self._storage.set_trial_param(trial_id, *args)

    def set_trial_user_attr(self, trial_id, key, value) -> None:
        if trial_id != DRAFT_ID:
            self._storage.set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id, key, value) -> None:
        if trial_id != DRAFT_ID:
            return self._storage.set_trial_system_attr(trial_id, key, value)
        self.frozen.system_attrs[key] = value

    def get_trial_system_attrs(self, trial_id) -> dict:
        if trial_id != DRAFT_ID:
            return self._storage.get_trial_system_attrs(trial_id)
        return dict(self.frozen.system_attrs)


class _DraftStudy:
    """The study as the sampler sees it while a draft is proposed: the same, but for its storage."""

    def __init__(self, study: optuna.Study, storage: _DraftStorage):
        self._real, self._storage = study, storage

    def __getattr__(self, name):
        return getattr(self._real, name)


class DraftTrial(optuna.Trial):
    def __new__(cls, study: optuna.Study):
        if not compat.optuna_fast():  # the stock path: no private layout used
            return AskedTrial(study)
        return super().__new__(cls)

    def __init__(self, study: optuna.Study):  # optuna.Trial.__init__ without its storage read
        study._thread_local.cached_all_trials = None  # as Study.ask(): the sampler reads the study afresh
        # A number no stored trial has, so the sampler neither mistakes the draft for a running
        # trial nor reuses what it read for another one.
        self._cached_frozen_trial = FrozenTrial(
            number=-next(_drafts), state=TrialState.RUNNING, value=None,
            datetime_start=datetime.datetime.now(), datetime_complete=None, params={}, distributions={},
            user_attrs={}, system_attrs={}, intermediate_values={}, trial_id=DRAFT_ID)
        self.storage = _DraftStorage(study._storage, self._cached_frozen_trial)
        self.real_study, self.study, self._trial_id = study, _DraftStudy(study, self.storage), DRAFT_ID
        study.sampler.before_trial(pruners._filter_study(self.study, self._cached_frozen_trial), self._cached_frozen_trial)
        self.relative_search_space = None
        self._relative_params = None
        self._fixed_params: dict = {}

    def commit(self, known: dict, numbered: Callable[[int], dict] | None = None) -> optuna.Trial:
        """Store the draft as a RUNNING trial with its parameters and attributes, in one
        transaction, and return it as a live Trial. `known` maps each parameter name to the
        distribution the study already stores it with (filled in here): a changed one is refused,
        as Optuna's per-parameter write would refuse it. `numbered(number)` gives more user
        attributes, from the number the trial gets."""
        frozen = self._cached_frozen_trial
        for name, dist in frozen.distributions.items():
            check_distribution_compatibility(known.setdefault(name, dist), dist)
        study = self.real_study
        [(trial_id, number)] = insert_trials(study, [frozen], numbered)
        return _live(study, trial_id, number, frozen)


def _live(study: optuna.Study, trial_id: int, number: int, frozen: FrozenTrial) -> optuna.Trial:
    """optuna.Trial(study, trial_id) without reading back what was just written (and without a
    second before_trial: the draft had it). It takes over the draft's frozen trial: a committed
    draft is spent."""
    trial = optuna.Trial.__new__(optuna.Trial)
    trial.study, trial._trial_id, trial.storage = study, trial_id, study._storage
    trial._cached_frozen_trial = frozen
    trial._cached_frozen_trial.number, trial._cached_frozen_trial._trial_id = number, trial_id
    trial.relative_search_space, trial._relative_params, trial._fixed_params = None, None, {}
    return trial


class AskedTrial:
    """A draft's stock path: Optuna's own study.ask() trial, stored at once and each parameter as it
    is suggested (about 60 statements a suggestion, not one transaction). It is used as that trial
    until commit() hands the trial itself over: the same trials, the same refusals."""

    def __init__(self, study: optuna.Study):
        self.trial = study.ask()

    def __getattr__(self, name):
        return getattr(self.trial, name)

    def commit(self, known: dict, numbered: Callable[[int], dict] | None = None) -> optuna.Trial:
        """As DraftTrial.commit: `known` checked and filled in, `numbered(number)` stored."""
        for name, dist in self.trial.distributions.items():
            check_distribution_compatibility(known.setdefault(name, dist), dist)
        if numbered:
            set_trial_attrs(self.trial, numbered(self.trial.number))
        return self.trial


def waiting_trials(study: optuna.Study) -> int:
    """How many enqueued trials wait: Study.ask() hands those out first, with their fixed params."""
    return len(study._storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,)))


def stored_distributions(study: optuna.Study) -> dict:
    """Each parameter's distribution as the study's trials store it."""
    known: dict = {}
    for t in study._storage.get_all_trials(study._study_id, deepcopy=False):
        for name, dist in t.distributions.items():
            known.setdefault(name, dist)
    return known
