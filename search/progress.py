"""One line per finished trial while a sweep runs: outcome, counts, best so far."""

from __future__ import annotations

import time

import optuna
from ray.tune import Callback

from search.outcomes import tally


class Progress(Callback):
    def __init__(self, searcher, study: optuna.Study, todo: int):
        self.searcher, self.study, self.todo = searcher, study, todo
        self.start = time.time()
        self.seen = 0

    def on_trial_error(self, iteration, trials, trial, **info):
        text = ""
        if trial.error_file:
            try:
                with open(trial.error_file) as f:
                    text = f.read().strip()
            except OSError:
                pass
        self.searcher.fail(trial.trial_id, _last_error_line(text) or "the trial raised an error")
        self._line(trial)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trial)

    def _line(self, trial) -> None:
        self.seen += 1
        frozen = next((t for t in self.study.get_trials(deepcopy=False)
                       if t.user_attrs.get("ray_trial_id") == trial.trial_id), None)
        c = tally(self.study.get_trials(deepcopy=False))
        try:
            best = f"best {self.study.best_value:.4f} (trial {self.study.best_trial.number})"
        except ValueError:
            best = "no complete trial yet"
        what = ""
        if frozen is not None:
            value = f" {frozen.value:.4f}" if frozen.value is not None else ""
            what = (f"trial {frozen.number} {frozen.state.name}{value}, "
                    f"{frozen.user_attrs.get('n_params', 0):,} params, {frozen.user_attrs.get('epochs_run', 0)} epochs; ")
        print(f"[{time.time() - self.start:6.0f}s] {self.seen}/{self.todo} {what}"
              f"{c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed, {c['running']} running, "
              f"{c['over_budget']} over budget, {c['unbuildable']} unbuildable, {c['forbidden']} forbidden; {best}", flush=True)


def _last_error_line(text: str) -> str:
    """The exception line of a traceback (e.g. 'NonFiniteLoss: non-finite training loss ...')."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    for line in reversed(lines):
        if "Error" in line.split(":")[0] or "Exception" in line.split(":")[0] or "Loss" in line.split(":")[0]:
            return line
    return lines[-1] if lines else ""
