"""One line per finished trial while a sweep runs: outcome, counts, best so far; with asha.pause
also one when a trial starts waiting at a rung and one when it goes on."""

from __future__ import annotations

import time

import optuna
from ray.tune import Callback

from search.outcomes import outcome, tally


class Progress(Callback):
    """Counts are read from the study once, then kept up to date from each finished trial, so a
    line costs one trial's read, not a scan of the whole study (5,000 trials: 5,000 scans)."""

    def __init__(self, searcher, study: optuna.Study, todo: int, open_ended: bool = False):
        self.searcher, self.study, self.todo, self.open_ended = searcher, study, todo, open_ended
        self.start = time.time()
        self.seen = 0
        self.held: set[str] = set()  # asha.pause: trials announced as waiting at a rung
        trials = study.get_trials(deepcopy=False)
        self.counts = tally(trials)  # "running" comes from the searcher (see _line)
        done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        self.best = max(done, key=self._score) if done else None

    def _score(self, t) -> float:
        return t.value if self.study.direction == optuna.study.StudyDirection.MAXIMIZE else -t.value

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

    def on_trial_result(self, iteration, trials, trial, result, **info):
        """asha.pause: a trial held at a rung is not finished, but the user should see it wait
        (and go on: its first result after waiting)."""
        waiting = self.searcher.asha.waiting  # empty unless asha.pause
        held = trial.trial_id in waiting
        if held == (trial.trial_id in self.held):
            return
        self.held.symmetric_difference_update({trial.trial_id})
        number = self.searcher.live[trial.trial_id].number
        what = (f"waits at its epoch-{result.get('epoch')} rung" if held
                else f"goes on from its rung (epoch {result.get('epoch')} done)")
        print(f"[{time.time() - self.start:6.0f}s] trial {number} {what}; "
              f"{len(self.searcher.live) - len(waiting)} running, {len(waiting)} waiting", flush=True)

    def _line(self, trial) -> None:
        self.seen += 1
        optuna_id = self.searcher.optuna_ids.get(trial.trial_id)
        frozen = self.study._storage.get_trial(optuna_id) if optuna_id is not None else None
        if frozen is not None and (o := outcome(frozen)) is not None and o != "running":
            self.counts[o] += 1
            if frozen.state == optuna.trial.TrialState.COMPLETE and (
                    self.best is None or self._score(frozen) > self._score(self.best)):
                self.best = frozen
        waiting = len(self.searcher.asha.waiting)
        c = {**self.counts, "running": len(self.searcher.live) - waiting, **self._rejected()}
        best = f"best {self.best.value:.4f} (trial {self.best.number})" if self.best else "no complete trial yet"
        what = ""
        if frozen is not None:
            value = f" {frozen.value:.4f}" if frozen.value is not None else ""
            what = (f"trial {frozen.number} {frozen.state.name}{value}, "
                    f"{frozen.user_attrs.get('n_params', 0):,} params, {frozen.user_attrs.get('epochs_run', 0)} epochs; ")
        total = "" if self.open_ended else f"/{self.todo}"  # open-ended: the time budget decides
        print(f"[{time.time() - self.start:6.0f}s] {self.seen}{total} {what}"
              f"{c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed, {c['running']} running, "
              + (f"{waiting} waiting, " if self.searcher.asha.pauses else "") +
              f"{c['over_budget']} over budget, {c['unbuildable']} unbuildable, {c['forbidden']} forbidden; {best}", flush=True)

    def _rejected(self) -> dict[str, int]:
        """Rejections so far: those of earlier runs of the study plus this searcher's."""
        return {k: self.counts[k] + n for k, n in self.searcher.rejected.items()}


def _last_error_line(text: str) -> str:
    """The exception line of a traceback (e.g. 'NonFiniteLoss: non-finite training loss ...')."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    for line in reversed(lines):
        if "Error" in line.split(":")[0] or "Exception" in line.split(":")[0] or "Loss" in line.split(":")[0]:
            return line
    return lines[-1] if lines else ""
