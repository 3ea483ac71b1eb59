"""Strict ASHA's bracket: a subclass of Ray's private `_Bracket` (pinned: ray 2.60.0) with the ASHA
paper's promotion rule, and `make_strict`, which swaps it into a scheduler's brackets (Ray's private
`_brackets`). search/asha/scheduler.py calls it only where compat.ray_fast() says the
installed Ray is the tested one; elsewhere Ray's own rule runs, with a warning.
"""

from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler

try:  # Ray's private bracket, with the tested Ray only (compat.ray_fast)
    from ray.tune.schedulers.async_hyperband import _Bracket
except ImportError:  # another Ray, where StrictBracket is never used: importing this module must not fail
    _Bracket = object


class StrictBracket(_Bracket):
    """A bracket with the ASHA paper's promotion rule (Li et al. 2020): a trial arriving at a rung
    goes on only if it ranks in the top floor(n / rf) of the n results the rung holds, its own
    included; a tie passes. Ray's rule compares it with the (1 - 1/rf) quantile of the earlier
    results only, so the first trial at each rung always goes on, however weak: early in a sweep
    that trains a few random configs to max_epochs before any rival has reported. The cost: it
    stops rather than waits for rivals, so the first rf - 1 trials at a rung are stopped even when
    they are the best so far (Optuna's SuccessiveHalvingPruner lets them go on; asha.pause,
    search/asha/pausing.py, makes them wait paused)."""

    def on_result(self, trial, cur_iter: int, cur_rew: float | None) -> str:
        for milestone, recorded in self._rungs:  # the highest milestone first
            if cur_iter < milestone or trial.trial_id in recorded:
                continue
            if cur_rew is None:
                return super().on_result(trial, cur_iter, cur_rew)  # Ray's warning; nothing to rank
            better = sum(v > cur_rew for v in recorded.values())  # a NaN (diverged) ranks below every number
            recorded[trial.trial_id] = cur_rew
            passes = cur_rew == cur_rew and better < (len(recorded) // self.rf)
            return ASHAScheduler.CONTINUE if passes else ASHAScheduler.STOP
        return ASHAScheduler.CONTINUE


def make_strict(scheduler: ASHAScheduler) -> None:
    """Every bracket of `scheduler` (Ray's ASHA, just made) follows the paper's rule from now on."""
    for bracket in scheduler._brackets:
        bracket.__class__ = StrictBracket
