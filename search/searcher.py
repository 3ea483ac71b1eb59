"""The Optuna-backed Tune searcher (driver process only). It asks ASHA's scheduler
(search/asha/scheduler.py) which trials it stopped.

Outcomes told to Optuna: COMPLETE with the best epoch's value; PRUNED for a trial ASHA stopped
(its learning curve kept as intermediate values); FAIL with the error text for a crash; budget
rejections are told at once (constraint + user attribute) and never reach a worker.
"""

from __future__ import annotations

import functools
import json
import time

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from models.config import RUNTIME_KEYS
from search.asha.scheduler import RecordingASHA
from search.internals.draft import DraftTrial, stored_distributions, waiting_trials
from search.outcomes import REJECTIONS, STOPPED
from search.errors import SearchError
from search.storage import set_trial_attrs
from spaces import CompiledSpace, record_rejection

MAX_REJECTIONS_IN_A_ROW = 1000


class BudgetSearcher(Searcher):
    def __init__(self, study: optuna.Study, compiled: CompiledSpace, asha: RecordingASHA, *,
                 seed: int, cpus: float, attrs: dict, orphans: list[optuna.trial.FrozenTrial],
                 checkpoint_at: list[int] | None = None, extra: dict | None = None):
        # Tune (and ASHA, unless asha.rank_by is epoch) ranks trials on the best epoch so far (what
        # the study records as the value), so one bad epoch at a rung does not prune a trial whose
        # best is competitive.
        super().__init__(metric=f"best_{compiled.space.metric}", mode=compiled.space.mode)
        self.objective = compiled.space.metric  # the per-epoch value: the learning curve
        self.study, self.compiled, self.asha = study, compiled, asha
        self.seed, self.cpus, self.attrs, self.checkpoint_at = seed, cpus, attrs, checkpoint_at
        self.orphans = list(orphans)  # trials a killed driver left RUNNING: re-run, not re-asked
        self.live: dict[str, optuna.Trial] = {}
        self.started: dict[str, float] = {}
        self.last: dict[str, dict] = {}
        self.best_rows: dict[str, dict] = {}  # the best epoch's result so far, per trial
        self.steps: dict[str, set[int]] = {}  # epochs already reported to Optuna, per trial
        self.optuna_ids: dict[str, int] = {}  # Optuna's trial id of each Tune trial id (progress lines)
        self.failed: dict[str, optuna.Trial] = {}  # waiting for their error text
        self.rejected = dict.fromkeys(REJECTIONS.values(), 0)
        self.propose_s: list[float] = []  # per proposal: seconds proposing, and of that the budget check
        self.budget_s: list[float] = []
        self.distributions: dict | None = None  # each parameter's distribution as the study stores it
        self.waiting: int | None = None  # enqueued trials not yet handed out
        self.extra = dict(extra or {})  # more keys of every trainable config (a simulated trial's settings, fractions)
        self.n_params: dict[str, int] = {}  # the budget check's count of each handed-out trial
        # (wall, driver thread CPU) seconds from Tune's request to the trial's config (bench/scale.py)
        self.handout_s: dict[str, tuple[float, float]] = {}

    # --- Tune's calls -------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict | None:
        start, cpu, steps = time.perf_counter(), time.thread_time(), set()
        if self.orphans:
            frozen = self.orphans.pop(0)
            trial = optuna.trial.Trial(self.study, frozen._trial_id)
            config = json.loads(frozen.user_attrs["config"])
            steps = set(frozen.intermediate_values)  # reported before the driver was killed
            set_trial_attrs(trial, {"ray_trial_id": trial_id, "handed_out_at": round(time.time(), 3)})
            self.n_params[trial_id] = frozen.user_attrs.get("n_params", 0)
        else:
            trial, config = self._ask_feasible(trial_id)
        self.live[trial_id] = trial
        self.started[trial_id] = time.time()
        self.optuna_ids[trial_id] = trial._trial_id
        self.steps[trial_id] = steps
        self.handout_s[trial_id] = (time.perf_counter() - start, time.thread_time() - cpu)
        return {"engine": config, "cpus": self.cpus, "checkpoint_at": self.checkpoint_at,
                "n_params": self.n_params.pop(trial_id, 0), **self.extra}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        trial = self.live.get(trial_id)
        if trial is not None:
            self._observe(trial, trial_id, result)

    def _observe(self, trial: optuna.Trial, trial_id: str, result: dict | None) -> None:
        """Keep the newest epoch's result and report its value as an intermediate value."""
        if not result or self.objective not in result or "epoch" not in result:
            return
        if result["epoch"] < self.last.get(trial_id, {}).get("epoch", 0):
            return
        if trial_id not in self.last and "node_id" in result:  # where it runs: node, kernel path, CPU, threads
            set_trial_attrs(trial, {k: result[k] for k in ("node_id", *RUNTIME_KEYS) if k in result})
        self.last[trial_id] = result
        if result["epoch"] == result["best_epoch"]:
            self.best_rows[trial_id] = result
        step = int(result["epoch"])
        if step not in self.steps.setdefault(trial_id, set()):  # a retried trial repeats epochs
            self.steps[trial_id].add(step)
            trial.report(float(result[self.objective]), step)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial = self.live.pop(trial_id, None)
        if trial is None:
            return
        self._observe(trial, trial_id, result)  # a trainable's final result may arrive only here
        last = self.last.pop(trial_id, {})
        self.steps.pop(trial_id, None)
        self._record_run(trial, trial_id, last)
        if error:
            self.failed[trial_id] = trial  # told FAIL when the error text arrives (see fail())
        elif "epoch" not in last:  # never trained an epoch (e.g. the time budget ran out first)
            trial.set_user_attr("error", f"{STOPPED} before its first epoch")
            self.study.tell(trial, state=TrialState.FAIL)
        elif last.get("last"):
            self.study.tell(trial, float(last[self.metric]))
        elif trial_id in self.asha.stopped:
            self.study.tell(trial, state=TrialState.PRUNED)
        else:  # stopped by the sweep itself (time budget, interrupt) before finishing
            trial.set_user_attr("error", f"{STOPPED} at epoch {last['epoch']} (time budget or interrupt)")
            self.study.tell(trial, state=TrialState.FAIL)

    # --- our own ------------------------------------------------------------------------
    def fail(self, trial_id: str, text: str) -> None:
        trial = self.failed.pop(trial_id, None)
        if trial is not None:
            trial.set_user_attr("error", text[-2000:])
            self.study.tell(trial, state=TrialState.FAIL)

    def close(self) -> None:
        """At the sweep's end: errors still waiting for their text, and trials Tune stopped
        without telling the searcher (its time budget does that), are closed in the study."""
        for trial_id in list(self.failed):
            self.fail(trial_id, "the trial raised an error (no message was recorded)")
        for trial_id in list(self.live):
            self.on_trial_complete(trial_id)

    def _ask_feasible(self, trial_id: str) -> tuple[optuna.Trial, dict]:
        for _ in range(MAX_REJECTIONS_IN_A_ROW):
            if self.waiting is None:  # read once: only the sweep enqueues, before its first suggestion
                self.waiting = waiting_trials(self.study)
            draft = None if self.waiting else DraftTrial(self.study)
            if draft is None:  # enqueued trials go through ask(), which hands them out with their params
                self.waiting -= 1
            trial = draft or self.study.ask()
            proposal = self.compiled.propose(trial)
            self.propose_s.append(proposal.seconds)
            self.budget_s.append(proposal.budget_seconds)
            if not proposal.feasible:
                record_rejection(trial, proposal, self.compiled.space.max_params)
            attrs = functools.partial(self._trial_attrs, proposal, trial_id) if proposal.feasible else None
            if draft is not None:  # stored with its attributes in one transaction
                trial = draft.commit(self._stored_distributions(), attrs)
            elif attrs:
                set_trial_attrs(trial, attrs(trial.number))  # one transaction, not one per attribute
            if proposal.feasible:
                self.n_params[trial_id] = proposal.n_params
                break
            self.study.tell(trial, state=TrialState.PRUNED)
            self.rejected[REJECTIONS[proposal.rejected]] += 1
        else:
            raise SearchError(f"{self.compiled.space.path}: {MAX_REJECTIONS_IN_A_ROW} proposals in a row were rejected "
                              f"(last: {proposal.rejected}); raise budget.max_params, or make heads divide every "
                              "d_model the space allows, or shrink the space")
        return trial, self._config(proposal, trial.number)

    def _config(self, proposal, number: int) -> dict:
        """The trainable's config of a feasible proposal, seeded by the trial's number."""
        return {**proposal.config, "seed": self.seed + number}

    def _trial_attrs(self, proposal, trial_id: str, number: int) -> dict:
        """The user attributes the sweep stores with a trial (its number seeds the config)."""
        config = self._config(proposal, number)
        attrs = {"config": json.dumps(config), "n_params": proposal.n_params, **self.attrs,
                 **{k: v for k, v in proposal.extra.items() if v is not None}, "ray_trial_id": trial_id,
                 "handed_out_at": round(time.time(), 3)}
        if self.compiled.space.width in config:
            attrs[self.compiled.space.width] = config[self.compiled.space.width]
        return attrs

    def _stored_distributions(self) -> dict:
        if self.distributions is None:  # read once; each committed draft adds its own
            self.distributions = stored_distributions(self.study)
        return self.distributions

    def _record_run(self, trial: optuna.Trial, trial_id: str, last: dict) -> None:
        queued = time.time() - self.started.pop(trial_id, time.time())
        wall = float(last.get("wall_s", queued))  # time inside the trainable, not waiting for a slot
        handout, handout_cpu = self.handout_s.pop(trial_id, (0.0, 0.0))
        attrs = {"wall_s": round(wall, 2), "cpu_s": round(wall * self.cpus, 2), "handout_ms": round(1000 * handout, 2),
                 "handout_cpu_ms": round(1000 * handout_cpu, 2)}
        best = self.best_rows.pop(trial_id, None)
        if best is not None:
            attrs["best_metrics"] = {k: round(float(v), 6) for k, v in best.items() if k.startswith("val_")}
        if "epoch" in last:
            attrs.update(epochs_run=int(last["epoch"]), best_epoch=int(last["best_epoch"]),
                         samples_s=round(float(last["samples_s"]), 1))
        set_trial_attrs(trial, attrs)
