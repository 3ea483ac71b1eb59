"""RecordingASHA: Ray's ASHA scheduler, recording which trials it stopped (driver process only)."""

from __future__ import annotations

import numpy as np
from ray.tune.schedulers import ASHAScheduler

from search.internals import compat


class RecordingASHA(ASHAScheduler):
    """ASHA that remembers the trials it stopped, so PRUNED in Optuna matches what ASHA did, and
    that picks each trial's bracket (asha.brackets > 1) from its own seeded stream: Ray's draws
    from numpy's global random state, so the same seed gave a different bracket per trial.
    `strict` swaps Ray's promotion rule for the paper's (search/internals/bracket.py), with the
    tested Ray only (it reaches into Ray's private brackets); elsewhere Ray's own rule runs, with a warning.
    `rank_metric` (asha.rank_by epoch) ranks a trial at a rung by that result key, the epoch's own
    value, instead of Tune's metric (the best epoch so far): a trial past its peak then meets the
    rung at its current level. The default settings are Ray's."""
    pauses = False  # asha.pause's PausingASHA: trials wait, paused, at a rung (in `waiting`)

    def __init__(self, *, max_t: int = 100, grace_period: int = 1, reduction_factor: float = 4, brackets: int = 1,
                 seed: int = 0, strict: bool = False, rank_metric: str | None = None, **kwargs):
        super().__init__(max_t=max_t, grace_period=grace_period, reduction_factor=reduction_factor,
                         brackets=brackets, **kwargs)
        self.settings = (max_t, grace_period, reduction_factor, brackets)  # its rungs: search.asha.rungs(*settings)
        self.rank_metric = rank_metric
        self.tune_metric = kwargs.get("metric")  # Tune's metric, kept here rather than read from Ray's private one
        self.stopped: set[str] = set()
        self.waiting: dict = {}  # asha.pause only (PausingASHA): trials held at a rung
        self.bracket_draws = np.random.default_rng(seed)
        self.strict = strict and self._make_strict()

    def _make_strict(self) -> bool:
        if not compat.ray_fast():
            compat.warn_once("asha-strict", "asha.strict: Ray's own promotion rule runs instead of the ASHA paper's "
                                            "(the Ray fast paths are off)")
            return False
        from search.internals.bracket import make_strict
        make_strict(self)
        return True

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        accepted = super().set_search_properties(metric, mode, **spec)
        if accepted and metric:
            self.tune_metric = metric
        return accepted

    def on_trial_add(self, tune_controller, trial):
        state = np.random.get_state()
        np.random.seed(self.bracket_draws.integers(2**32))  # Ray's softmax choice, from this stream
        try:
            super().on_trial_add(tune_controller, trial)
        finally:
            np.random.set_state(state)

    def _ranked(self, result: dict) -> dict:
        if self.rank_metric and self.tune_metric and result and self.rank_metric in result:
            return {**result, self.tune_metric: result[self.rank_metric]}  # a copy: Tune keeps the best so far
        return result

    def on_trial_complete(self, tune_controller, trial, result):
        super().on_trial_complete(tune_controller, trial, self._ranked(result))

    def on_trial_result(self, tune_controller, trial, result):
        decision = super().on_trial_result(tune_controller, trial, self._ranked(result))
        if decision == self.STOP:
            self.stopped.add(trial.trial_id)
        return decision
