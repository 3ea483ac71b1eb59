"""asha.pause (search/asha/pausing.py): the ASHA paper's promotions on Tune's PAUSE. A trial not
yet in its rung's top waits paused and goes on when later results put it there; nothing a
paused trial reported is lost or told twice when it goes on; the run ends when only waiting
trials are left."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from optuna.trial import TrialState
from ray.tune.experiment import Trial

from search.asha.pausing import PausingASHA
from search.simulate import simulated_curve
from spaces import SpaceError, load_space

GO, PAUSE, STOP = PausingASHA.CONTINUE, PausingASHA.PAUSE, PausingASHA.STOP


def row(epoch: int, value: float) -> dict:
    return {"epoch": epoch, "best_val_hit5": value, "val_hit5": value}


def scheduler(mode: str = "max") -> PausingASHA:
    asha = PausingASHA(time_attr="epoch", max_t=9, grace_period=1, reduction_factor=3, milestones=[1, 3, 9])
    asha.set_search_properties("best_val_hit5", mode)
    return asha


class Controller:
    """The four calls PausingASHA makes of Tune's controller."""

    def __init__(self, trials, finished=False):
        self.trials, self.stopped = trials, []
        self.search_alg = SimpleNamespace(is_finished=lambda: finished)

    def get_live_trials(self):
        return [t for t in self.trials if t.status in (Trial.PAUSED, Trial.RUNNING)]

    def stop_trial(self, trial):
        self.stopped.append(trial.trial_id)
        trial.status = Trial.TERMINATED


def arrive(asha, values, epoch=1):
    trials = [SimpleNamespace(trial_id=f"t{i}", status=Trial.RUNNING) for i in range(len(values))]
    out = []
    for t, v in zip(trials, values):
        asha.on_trial_add(None, t)
        out.append(asha.on_trial_result(None, t, row(epoch, v)))
        t.status = Trial.PAUSED if out[-1] == PAUSE else Trial.RUNNING
    return trials, out


def test_a_trial_below_its_rung_waits_and_goes_on_when_later_results_put_it_in_the_top():
    asha = scheduler()
    trials, decisions = arrive(asha, [0.6, 0.2, 0.1, 0.3, 0.25, 0.5])
    # n = 1, 2: nobody is in the top floor(n/3) = 0, they wait; n = 3: 0.1 is not the best
    assert decisions == [PAUSE, PAUSE, PAUSE, PAUSE, PAUSE, GO]  # n = 6: top 2, 0.5 is second
    assert asha.stopped == {"t0", "t1", "t2", "t3", "t4"}  # PRUNED unless promoted
    controller = Controller(trials)
    first = asha.choose_trial_to_run(controller)  # 0.6 became the rung's best at n = 3
    assert first is trials[0] and "t0" not in asha.stopped and "t0" not in asha.waiting
    first.status = Trial.RUNNING
    assert asha.choose_trial_to_run(controller) is None  # top 2 of 6: 0.6 and 0.5 have gone on
    assert asha.on_trial_result(None, trials[0], row(2, 0.61)) == GO  # between rungs
    assert asha.on_trial_result(None, trials[0], row(9, 0.7)) == STOP and "t0" not in asha.stopped  # max_epochs


def test_lower_better_objectives_and_nan_results():
    asha = scheduler("min")
    _, decisions = arrive(asha, [0.5, 0.4, 0.9, 0.3])
    assert decisions == [PAUSE, PAUSE, PAUSE, GO]  # loss 0.3 is the lowest of 4: top 1
    asha = scheduler()
    trials, decisions = arrive(asha, [float("nan"), 0.1, 0.2])
    assert decisions == [PAUSE, PAUSE, GO]
    assert asha.choose_trial_to_run(Controller(trials)) is None  # a diverged trial never goes on


def test_the_run_ends_when_only_waiting_trials_are_left():
    asha = scheduler()
    trials, _ = arrive(asha, [0.3, 0.2])
    assert asha.choose_trial_to_run(Controller(trials, finished=False)) is None  # new trials may still come
    done = Controller(trials, finished=True)
    assert asha.choose_trial_to_run(done) is None and done.stopped == ["t0", "t1"]
    asha.on_trial_remove(done, trials[0])
    assert "t0" not in asha.waiting and "t0" in asha.stopped  # told PRUNED by the searcher


def test_the_rung_index_promotes_as_the_rule_says_in_a_long_random_sweep():
    """The sorted scores and heaps give what a scan of every waiting trial against its whole rung
    gives (the paper's rule): a trial in its rung's top, from the highest such rung, the best there."""
    import random
    draw, asha = random.Random(7), scheduler()
    trials, epoch = {}, {}
    for step in range(1200):
        if draw.random() < 0.4 or not trials:  # a new trial reaches rung 1
            t = SimpleNamespace(trial_id=f"t{step}", status=Trial.RUNNING)
            trials[t.trial_id], epoch[t.trial_id] = t, 1
            asha.on_trial_add(None, t)
        running = [t for t in trials.values() if t.status == Trial.RUNNING]
        if running and draw.random() < 0.7:  # a running trial reports its next rung (or a NaN)
            t = draw.choice(running)
            value = float("nan") if draw.random() < 0.02 else round(draw.random(), 2)  # ties too
            decision = asha.on_trial_result(None, t, row(epoch[t.trial_id], value))
            t.status = {PAUSE: Trial.PAUSED, GO: Trial.RUNNING, STOP: Trial.TERMINATED}[decision]
            epoch[t.trial_id] = {1: 3, 3: 9}.get(epoch[t.trial_id], 9)
        if draw.random() < 0.05 and asha.waiting:  # the time budget stops a waiting trial
            t = trials[draw.choice(sorted(asha.waiting))]
            asha.on_trial_remove(None, t)
            t.status = Trial.TERMINATED
        expected = _promotable_by_scan(asha)
        chosen = asha.choose_trial_to_run(Controller(list(trials.values())))
        assert (chosen is None) == (not expected)
        if chosen is not None:
            assert chosen.trial_id in expected
            assert asha.rung_values[expected[chosen.trial_id]][chosen.trial_id] == max(
                asha.rung_values[m][i] for i, m in expected.items() if m == max(expected.values()))
            chosen.status = Trial.RUNNING
    assert sum(len(r) for r in asha.rung_values.values()) > 400 and asha.waiting  # a long sweep, many waiting


def _promotable_by_scan(asha) -> dict[str, int]:
    """Every PAUSED waiting trial in its rung's top by the rule itself: trial id -> its rung."""
    out = {}
    for trial_id, (milestone, trial) in asha.waiting.items():
        recorded = asha.rung_values[milestone]
        mine = recorded[trial_id]
        better = sum(v > mine for v in recorded.values())
        if trial.status == Trial.PAUSED and mine > float("-inf") and better < len(recorded) // asha.rf:
            out[trial_id] = milestone
    return out


def test_pause_is_a_checked_key_and_part_of_the_signature(tmp_path):
    from search.asha import asha_signature, asha_text
    path = tmp_path / "s.yaml"
    base = ("name: s\ndata: {synthetic: {users: 6, days: 30, locations: 30, seed: 0}}\nbudget: {max_params: 20000}\n"
            "params: {family: gru, d_model: 16}\n")
    path.write_text(base + "asha: {max_epochs: 9, pause: true}\n")
    a = load_space(path).asha
    assert asha_signature(a) == [9, 1, 3.0, 1, "pause"] and "paused promotions" in asha_text(asha_signature(a))
    for bad, said in (("pause: 1", "asha.pause: must be true or false, got 1"),
                      ("pause: true, brackets: 2", "asha.pause: works with one bracket")):
        path.write_text(base + f"asha: {{max_epochs: 9, {bad}}}\n")
        with pytest.raises(SpaceError, match=said):
            load_space(path)


def test_max_concurrent_with_pause_is_refused_before_anything_starts(tmp_path, capsys):
    """Tune's concurrency limit counts waiting trials as running: the sweep would stall."""
    from search.cli import main
    space = tmp_path / "paused.yaml"
    space.write_text(SPACE)
    assert main(["sweep", str(space), "--max-concurrent", "2", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--max-concurrent 2 with asha.pause" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "nextsweep.db").exists()  # no half-made study


SPACE = """
name: paused
data: {synthetic: {users: 8, days: 60, locations: 40, seed: 0}}
budget: {max_params: 40000, width: d_model}
asha: {max_epochs: 9, grace_period: 1, reduction_factor: 3, pause: true}
params:
  family: {type: categorical, choices: [gru, transformer]}
  heads: {type: categorical, choices: [2, 4], when: {family: transformer}}
  d_model: {type: int, low: 16, high: 96, step: 8}
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  batch_size: 128
"""


@pytest.mark.ray
def test_a_sweep_with_paused_promotions_loses_nothing_and_ends(tmp_path, capsys):
    """40 simulated trials on 4 CPUs: some wait paused and go on later from their rung checkpoint
    (their Tune results come from two worker runs), every trial's values are its curve's with no
    epoch missing or told twice, each trial ends COMPLETE or PRUNED, and the sweep ends by itself
    when the trials left all wait; the progress lines say who waits and who goes on."""
    import ray
    from search.sweep import SweepOptions, run_sweep
    space = tmp_path / "paused.yaml"
    space.write_text(SPACE)
    if ray.is_initialized():
        ray.shutdown()
    try:
        study = run_sweep(SweepOptions(space=str(space), study="p", samples=40, dir=str(tmp_path), seed=0,
                                       storage=f"sqlite:///{tmp_path / 'db.sqlite'}", simulate=True,
                                       epoch_seconds=0.05, local_cpus=4))
    finally:
        ray.shutdown()
    trained = _each_trial_whole(study, 40)
    assert {t.state for t in trained} == {TrialState.COMPLETE, TrialState.PRUNED}
    runs = [{json.loads(line)["started_at"] for line in p.read_text().splitlines()}
            for p in tmp_path.glob("**/result.json")]
    assert sum(len(r) > 1 for r in runs) >= 1  # a trial that waited went on in a second worker run
    assert len(runs) == 40  # one Tune trial per study trial: going on is not a new trial
    out = capsys.readouterr().out
    assert "waits at its epoch-1 rung" in out and "goes on from its rung" in out and " waiting, " in out


def _each_trial_whole(study, n: int) -> list:
    """The trained trials, `n` of them, each COMPLETE or PRUNED, its values its simulated curve's
    with no epoch missing or told twice, ended at a rung (waiting, pruned) or at max_epochs."""
    trained = [t for t in study.trials if "config" in t.user_attrs and "rejected" not in t.user_attrs]
    assert len(trained) == n and {t.state for t in trained} <= {TrialState.COMPLETE, TrialState.PRUNED}
    for t in trained:
        cfg = json.loads(t.user_attrs["config"])
        curve, steps = simulated_curve(cfg, cfg["epochs"]), sorted(t.intermediate_values)
        assert steps == list(range(1, len(steps) + 1))
        assert [t.intermediate_values[s] for s in steps] == pytest.approx(curve[:len(steps)], abs=1e-12)
        assert (t.state == TrialState.COMPLETE) == (len(steps) == 9)
        assert len(steps) in (1, 3, 9)
    return trained


@pytest.mark.ray
def test_a_paused_sweep_resumes(tmp_path):
    """--resume of a sweep with paused promotions: the first run's trials (those left waiting were
    PRUNED) stay as they were, and the new ones end whole, COMPLETE or PRUNED, every epoch told once."""
    import ray
    from search.sweep import SweepOptions, run_sweep
    space = tmp_path / "paused.yaml"
    space.write_text(SPACE)
    opts = dict(space=str(space), study="p", dir=str(tmp_path), seed=0, storage=f"sqlite:///{tmp_path / 'db.sqlite'}",
                simulate=True, epoch_seconds=0.05, local_cpus=4)
    if ray.is_initialized():
        ray.shutdown()
    try:
        first = run_sweep(SweepOptions(samples=12, **opts))
        _each_trial_whole(first, 12)
        before = {t.number: (t.state, dict(t.intermediate_values)) for t in first.trials}
        again = run_sweep(SweepOptions(samples=24, resume=True, **opts))
    finally:
        ray.shutdown()
    _each_trial_whole(again, 24)
    assert {t.number: (t.state, dict(t.intermediate_values)) for t in again.trials if t.number in before} == before
