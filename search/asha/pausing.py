"""PausingASHA: ASHA's promotions as the paper makes them (asha.pause), on Tune's public PAUSE.

Li et al. (MLSys 2020), Algorithm 2: a worker that frees up promotes a configuration in the top
1/rf of its rung that has not gone on yet, and only when there is none starts a new one. Ray's
ASHA decides once, when a trial arrives at a rung: it goes on or stops. With no rivals yet it goes
on (Ray's rule: the first trials of a sweep run to max_epochs unopposed) or stops (asha.strict:
the first rf - 1 at each rung die, a winner among them too, and a short sweep may end with none
complete). Here a trial that is not (yet) in its rung's top floor(n / rf) waits, paused with its
rung checkpoint, holding no CPU, and goes on the moment later results put it there (Tune hands it
the next free slot before a new trial, where no new trial was already waiting for one).
"""

from __future__ import annotations

import bisect
import heapq
import math

from ray.tune.experiment import Trial

from search.asha.scheduler import RecordingASHA


class PausingASHA(RecordingASHA):
    """One bracket. A trial still waiting when the sweep ends was pruned (it is in `stopped` while
    it waits); when every live trial waits and the searcher has no more to give (--samples
    reached), the waiting ones are stopped so the run ends. `milestones`: the rungs
    (search.asha.rungs of the same settings).

    Kept for a cheap check at every controller step, with thousands waiting: each rung's scores
    sorted, and its waiting trials in a heap, best first. Whether a trial is in the top is monotone
    in its score, so only the best waiting trials of each rung need a look."""
    pauses = True

    def __init__(self, *, milestones: list[int], **kwargs):
        super().__init__(**kwargs)
        self.rf = self.settings[2]
        self.sign = -1.0 if kwargs.get("mode") == "min" else 1.0
        self.rung_values: dict[int, dict[str, float]] = {m: {} for m in milestones if m < self.settings[0]}
        self.rung_sorted: dict[int, list[float]] = {m: [] for m in self.rung_values}  # its scores, ascending
        self.rung_waiting: dict[int, list[tuple[float, str]]] = {m: [] for m in self.rung_values}  # (-score, id)
        self.waiting: dict[str, tuple[int, Trial]] = {}  # trial id -> (its rung, the trial)

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        accepted = super().set_search_properties(metric, mode, **spec)
        if accepted and mode:
            self.sign = -1.0 if mode == "min" else 1.0
        return accepted

    def on_trial_result(self, tune_controller, trial, result):
        epoch, value = result.get("epoch", 0), self._ranked(result).get(self.tune_metric)
        if epoch >= self.settings[0]:
            return self.STOP  # max_epochs: the trainable ends here anyway (Ray's rule, not a prune)
        for milestone, recorded in sorted(self.rung_values.items(), reverse=True):
            if epoch < milestone or trial.trial_id in recorded:
                continue
            score = recorded[trial.trial_id] = self._score(value)
            bisect.insort(self.rung_sorted[milestone], score)
            if self._in_top(score, milestone):
                return self.CONTINUE
            self.waiting[trial.trial_id] = (milestone, trial)
            heapq.heappush(self.rung_waiting[milestone], (-score, trial.trial_id))
            self.stopped.add(trial.trial_id)  # PRUNED unless it is promoted later
            return self.PAUSE
        return self.CONTINUE

    def choose_trial_to_run(self, tune_controller):
        """A waiting trial that later results put in its rung's top (the highest rung first); else
        None: Tune starts its pending (new) trials by itself."""
        for milestone in sorted(self.rung_waiting, reverse=True):
            if (trial := self._promotable(milestone)) is not None:
                del self.waiting[trial.trial_id]
                self.stopped.discard(trial.trial_id)
                return trial
        self._end_if_only_waiting(tune_controller)
        return None

    def _promotable(self, milestone: int) -> Trial | None:
        """The best waiting, PAUSED trial of the rung if it is in the top (one still saving its
        checkpoint is not PAUSED yet: the next best may go first)."""
        heap, passed, found = self.rung_waiting[milestone], [], None
        while heap:
            negative, trial_id = heap[0]
            if self.waiting.get(trial_id, (None,))[0] != milestone:
                heapq.heappop(heap)  # gone on or removed: a stale entry
                continue
            if not self._in_top(-negative, milestone):
                break
            entry = heapq.heappop(heap)
            if self.waiting[trial_id][1].status == Trial.PAUSED:
                found = self.waiting[trial_id][1]
                break
            passed.append(entry)
        for entry in passed:
            heapq.heappush(heap, entry)
        return found

    def on_trial_remove(self, tune_controller, trial):
        self.waiting.pop(trial.trial_id, None)  # stopped while waiting (time budget, end of the samples)
        super().on_trial_remove(tune_controller, trial)

    def _in_top(self, score: float, milestone: int) -> bool:
        """The paper's rule: among the rung's n results, fewer than floor(n / rf) are better (a tie
        passes); a NaN (diverged) result never does."""
        scores = self.rung_sorted[milestone]
        better = len(scores) - bisect.bisect_right(scores, score)
        return score > -math.inf and better < len(scores) // self.rf

    def _score(self, value) -> float:
        value = float("nan") if value is None else float(value)
        return -math.inf if math.isnan(value) else self.sign * value

    def _end_if_only_waiting(self, tune_controller) -> None:
        """No result can come to promote anyone: the searcher is done and every live trial waits."""
        if not self.waiting or not tune_controller.search_alg.is_finished():
            return
        live = tune_controller.get_live_trials()
        if all(t.status == Trial.PAUSED and t.trial_id in self.waiting for t in live):
            for t in list(live):
                tune_controller.stop_trial(t)  # a scheduler may call it (Tune whitelists it)
