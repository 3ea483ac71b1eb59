"""The searcher, ASHA wiring and resume bookkeeping, without starting Ray (review items 2, 5, 6,
10, 22, 23): every outcome a trial can have lands in the study as the state `tally` counts."""

import json
import subprocess
import sys
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from search.outcomes import STOPPED, tally
from search.asha.scheduler import RecordingASHA
from search.searcher import BudgetSearcher
from search.errors import SearchError
from search.sweep import SweepOptions, _plan, open_study
from spaces import CompiledSpace, load_space, load_space_data

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = """
name: tiny
data: {synthetic: {users: 12, days: 40, locations: 60, seed: 2}}
budget: {max_params: 20000}
asha: {max_epochs: 4, grace_period: 1, reduction_factor: 2}
params:
  family: {type: categorical, choices: [gru, transformer]}
  heads: {type: categorical, choices: [2, 4], when: {family: transformer}}
  d_model: {type: int, low: 16, high: 64, step: 8}
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  batch_size: 128
"""


def load(tmp_path, text=SPACE):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    space = load_space(path)
    return space, CompiledSpace(space, load_space_data(space).info)


def make_searcher(compiled, study=None):
    study = study or optuna.create_study(direction="maximize")
    asha = RecordingASHA(time_attr="epoch", max_t=4, grace_period=1, reduction_factor=2)
    return BudgetSearcher(study, compiled, asha, seed=0, cpus=1, attrs={}, orphans=[])


def row(epoch, value, best, best_epoch, last=False):
    return {"epoch": epoch, "val_hit5": value, "best_val_hit5": best, "best_epoch": best_epoch, "last": last,
            "val_acc1": value / 2, "samples_s": 100.0, "wall_s": float(epoch)}


def test_every_outcome_maps_to_its_state(tmp_path):
    _, compiled = load(tmp_path)
    s = make_searcher(compiled)
    ids = ["done", "pruned", "crashed", "cut", "never"]
    for tid in ids:
        assert "engine" in s.suggest(tid)
    for tid in ids[:4]:
        s.on_trial_result(tid, row(1, 0.5, 0.5, 1))
    s.on_trial_result("done", row(2, 0.4, 0.5, 1, last=True))
    s.on_trial_complete("done", row(2, 0.4, 0.5, 1, last=True))
    s.asha.stopped.add("pruned")
    s.on_trial_complete("pruned", row(1, 0.5, 0.5, 1))
    s.on_trial_complete("crashed", error=True)
    s.fail("crashed", "NonFiniteLoss: non-finite training loss")
    s.on_trial_complete("cut", row(1, 0.5, 0.5, 1))
    s.close()  # "never": Tune stopped it before any epoch
    by_id = {t.user_attrs["ray_trial_id"]: t for t in s.study.trials}
    done = by_id["done"]
    assert done.state == TrialState.COMPLETE and done.value == 0.5  # the best epoch, not the last
    assert done.intermediate_values == {1: 0.5, 2: 0.4}  # the learning curve, every epoch
    assert done.user_attrs["best_epoch"] == 1 and done.user_attrs["best_metrics"]["val_acc1"] == 0.25
    assert by_id["pruned"].state == TrialState.PRUNED
    assert by_id["crashed"].state == TrialState.FAIL and "NonFiniteLoss" in by_id["crashed"].user_attrs["error"]
    assert by_id["cut"].user_attrs["error"].startswith(STOPPED) and by_id["never"].state == TrialState.FAIL
    assert tally(s.study.trials) == {"complete": 1, "pruned": 1, "failed": 1, "stopped": 2, "running": 0,
                                     "over_budget": 0, "unbuildable": 0, "forbidden": 0}


def test_asha_ranks_on_the_best_epoch_so_far(tmp_path):
    """A trial whose 2nd epoch dips below a rival is kept: its best (0.7) beats the rival's 0.6."""
    _, compiled = load(tmp_path)
    s = make_searcher(compiled)
    s.asha.set_search_properties(s.metric, "max")  # what TuneConfig(metric=searcher.metric) does
    a, b = SimpleNamespace(trial_id="a"), SimpleNamespace(trial_id="b")
    for t in (a, b):
        s.asha.on_trial_add(None, t)
    s.asha.on_trial_result(None, a, row(1, 0.5, 0.5, 1))
    s.asha.on_trial_result(None, b, row(1, 0.7, 0.7, 1))
    s.asha.on_trial_result(None, a, row(2, 0.6, 0.6, 2))
    decision = s.asha.on_trial_result(None, b, row(2, 0.4, 0.7, 1))
    assert decision == RecordingASHA.CONTINUE and "b" not in s.asha.stopped
    worse = s.asha.on_trial_result(None, SimpleNamespace(trial_id="c"), row(2, 0.3, 0.3, 2)) \
        if s.asha.on_trial_add(None, SimpleNamespace(trial_id="c")) is None else None
    assert worse == RecordingASHA.STOP  # the rung still prunes a trial whose best is weak


@pytest.mark.parametrize("rank_by, decision", [("best", RecordingASHA.CONTINUE), ("epoch", RecordingASHA.STOP)])
def test_asha_rank_by_epoch_meets_the_rung_at_the_current_value(tmp_path, rank_by, decision):
    """asha.rank_by: epoch ranks at the rung by the epoch's own value: the trial past its peak (0.7
    at epoch 1, 0.4 at the epoch-2 rung) is stopped by a rival at 0.6; Tune's result keeps its best."""
    from search.asha import make_asha
    space, _ = load(tmp_path, SPACE.replace("reduction_factor: 2}", f"reduction_factor: 2, rank_by: {rank_by}}}"))
    asha = make_asha(space.asha, metric=space.metric)
    asha.set_search_properties("best_val_hit5", "max")
    a, b = SimpleNamespace(trial_id="a"), SimpleNamespace(trial_id="b")
    for t in (a, b):
        asha.on_trial_add(None, t)
    asha.on_trial_result(None, a, row(1, 0.5, 0.5, 1))
    asha.on_trial_result(None, b, row(1, 0.7, 0.7, 1))
    asha.on_trial_result(None, a, row(2, 0.6, 0.6, 2))
    result = row(2, 0.4, 0.7, 1)
    assert asha.on_trial_result(None, b, result) == decision
    assert ("b" in asha.stopped) == (decision == RecordingASHA.STOP) and result["best_val_hit5"] == 0.7



def rung_decisions(strict: bool, values: list[float], rf: float = 3) -> list[str]:
    """Each trial's decision at ASHA's first rung (epoch 1), the trials arriving in this order."""
    asha = RecordingASHA(time_attr="epoch", max_t=9, grace_period=1, reduction_factor=rf, strict=strict)
    asha.set_search_properties("best_val_hit5", "max")
    out = []
    for i, v in enumerate(values):
        t = SimpleNamespace(trial_id=f"t{i}")
        asha.on_trial_add(None, t)
        out.append(asha.on_trial_result(None, t, row(1, v, v, 1)))
    return out


def test_strict_asha_does_not_let_the_first_trials_pass_unopposed():
    """Ray's rule continues the first trial at a rung whatever its value, and the second if it beats
    the first; the paper's rule (asha.strict) needs rf results at the rung, then the top floor(n/rf)."""
    go, stop = RecordingASHA.CONTINUE, RecordingASHA.STOP
    values = [0.1, 0.2, 0.5, 0.4, 0.3, 0.45, 0.6]
    assert rung_decisions(False, values) == [go, go, go, go, stop, go, go]  # 0.4 >= quantile 0.3 of .1 .2 .5
    # n = 1, 2: nobody passes; n = 3: top 1 (0.5 is); n = 4, 5: top 1 (0.4 and 0.3 are not);
    # n = 6: top 2 (0.45 is second); n = 7: top 2 (0.6 is first)
    assert rung_decisions(True, values) == [stop, stop, go, stop, stop, go, go]
    assert rung_decisions(True, [0.5, 0.5, 0.5]) == [stop, stop, go]  # a tie passes once n allows it
    assert rung_decisions(True, [0.5, float("nan"), 0.4, 0.3], rf=2) == [stop, stop, stop, stop]
    assert rung_decisions(True, [float("nan"), 0.5, 0.2], rf=2) == [stop, go, stop]  # a NaN ranks last


def test_strict_asha_stops_at_every_rung_and_records_pruned(tmp_path):
    """A trial that passed the first rung meets the rule again at the next, and a stop lands in the
    searcher's record (what Optuna's PRUNED follows)."""
    asha = RecordingASHA(time_attr="epoch", max_t=9, grace_period=1, reduction_factor=3, strict=True)
    asha.set_search_properties("best_val_hit5", "max")
    trials = [SimpleNamespace(trial_id=f"t{i}") for i in range(3)]
    for t in trials:
        asha.on_trial_add(None, t)
    for t, v in zip(trials, (0.2, 0.3, 0.4)):
        asha.on_trial_result(None, t, row(1, v, v, 1))
    assert asha.stopped == {"t0", "t1"}
    for epoch in (2, 3):
        decision = asha.on_trial_result(None, trials[2], row(epoch, 0.5, 0.5, epoch))
    assert decision == RecordingASHA.STOP and "t2" in asha.stopped  # alone at the epoch-3 rung


def test_strict_asha_is_part_of_the_space_signature(tmp_path):
    """A study swept with one rule does not resume under the other, and both are named in words."""
    from search.asha import asha_text, make_asha
    from search.study_record import space_signature
    plain, _ = load(tmp_path)
    strict, _ = load(tmp_path, SPACE.replace("reduction_factor: 2}", "reduction_factor: 2, strict: true}"))
    assert space_signature(plain)["asha"] == [4, 1, 2.0]  # unchanged for studies from before the option
    assert space_signature(strict)["asha"] == [4, 1, 2.0, 1, "strict"]
    assert asha_text(space_signature(strict)["asha"]) == "max_epochs 4, grace period 1, reduction factor 2, " \
                                                         "strict promotions"
    assert asha_text([4, 1, 2.0, 2]) == "max_epochs 4, grace period 1, reduction factor 2, 2 brackets"
    by_epoch, _ = load(tmp_path, SPACE.replace("reduction_factor: 2}", "reduction_factor: 2, rank_by: epoch}"))
    assert space_signature(by_epoch)["asha"] == [4, 1, 2.0, 1, "rank_by epoch"]
    assert asha_text(space_signature(by_epoch)["asha"]).endswith("reduction factor 2, ranked by the rung epoch's own value")
    assert make_asha(by_epoch.asha, metric="val_hit5").rank_metric == "val_hit5"
    assert make_asha(plain.asha, metric="val_hit5").rank_metric is None
    assert all(type(b).__name__ == "StrictBracket" for b in make_asha(strict.asha)._brackets)
    assert not any(type(b).__name__ == "StrictBracket" for b in make_asha(plain.asha)._brackets)


UNBUILDABLE_SPACE = """
name: odd
data: {synthetic: {users: 12, days: 40, locations: 60, seed: 2}}
params:
  family: transformer
  d_model: 30
  heads: {type: categorical, choices: [2, 4]}
  layers: 1
"""


def test_unbuildable_and_over_budget_are_recorded_apart(tmp_path):
    _, compiled = load(tmp_path, UNBUILDABLE_SPACE)  # no budget: 4 heads cannot split a width of 30
    s = make_searcher(compiled)
    for i in range(12):
        s.suggest(f"t{i}")
    rejected = [t for t in s.study.trials if "rejected" in t.user_attrs]
    assert rejected and all(t.user_attrs["rejected"] == "cannot be built" for t in rejected)
    assert all(t.constraints == {"params_over_budget": 1.0} for t in rejected)  # infeasible, so TPE learns to avoid them
    assert "heads=4: must divide d_model=30" in rejected[0].user_attrs["error"]
    counts = tally(s.study.trials)
    assert counts["unbuildable"] == len(rejected) == s.rejected["unbuildable"] and counts["over_budget"] == 0

    space, compiled = load(tmp_path)
    compiled.fit_width = False  # the width drawn blindly: some draws are over the budget
    s = make_searcher(compiled)
    for i in range(30):
        s.suggest(f"t{i}")
    over = [t for t in s.study.trials if t.user_attrs.get("rejected") == "over budget"]
    assert over and all(t.constraints["params_over_budget"] > 0 and t.user_attrs["n_params"] > space.max_params for t in over)
    assert tally(s.study.trials)["over_budget"] == len(over) and tally(s.study.trials)["unbuildable"] == 0


def _opts(tmp_path, space_path, resume=False):
    return SweepOptions(space=str(space_path), storage=f"sqlite:///{tmp_path / 's.db'}", study="st", resume=resume)


def _propose(study, compiled, n):
    out = []
    for _ in range(n):
        trial = study.ask()
        p = compiled.propose(trial)
        study.tell(trial, float(p.n_params % 7))
        out.append(json.dumps(trial.params, sort_keys=True))
    return out


def test_a_resumed_study_proposes_nothing_already_tried(tmp_path):
    space, compiled = load(tmp_path)
    opts = _opts(tmp_path, space.path)
    from search.storage import open_storage
    from search.sweep import _record_study
    study = open_study(opts, space, open_storage(opts.storage))
    _record_study(study, opts, space, "fp")
    first = _propose(study, compiled, 6)
    again = open_study(_opts(tmp_path, space.path, resume=True), space, open_storage(opts.storage))
    second = _propose(again, compiled, 6)
    assert not set(first) & set(second), "a resumed sweep proposed a configuration it had already tried"


def test_a_resume_mid_start_up_finishes_its_round_of_families(tmp_path):
    space, compiled = load(tmp_path)
    from search.storage import open_storage
    from search.sweep import _record_study

    def families(run_dir, stop_after):
        run_dir.mkdir()
        opts = _opts(run_dir, space.path)
        study = open_study(opts, space, open_storage(opts.storage))
        _record_study(study, opts, space, "fp")
        first = _propose(study, compiled, stop_after)
        again = open_study(_opts(run_dir, space.path, resume=True), space, open_storage(opts.storage))
        return [json.loads(p)["family"] for p in first + _propose(again, compiled, 8 - stop_after)]

    whole = families(tmp_path / "whole", 8)
    assert families(tmp_path / "resumed", 3) == whole  # the resumed sampler's other draws are fresh
    assert all(set(whole[i:i + 2]) == {"gru", "transformer"} for i in (0, 2, 4, 6))


@pytest.mark.parametrize("change, key", [("max_params: 20000", "budget"), ("high: 64", "params.d_model"),
                                          ("max_epochs: 4", "asha")])
def test_resume_refuses_a_changed_space(tmp_path, change, key):
    space, _ = load(tmp_path)
    opts = _opts(tmp_path, space.path)
    from search.storage import open_storage
    from search.sweep import _record_study
    study = open_study(opts, space, open_storage(opts.storage))
    _record_study(study, opts, space, "fp")
    new = {"max_params: 20000": "max_params: 30000", "high: 64": "high: 80", "max_epochs: 4": "max_epochs: 5"}[change]
    changed, _ = load(tmp_path, SPACE.replace(change, new))
    with pytest.raises(SearchError, match=f"--resume: .*{key}"):
        open_study(_opts(tmp_path, space.path, resume=True), changed, open_storage(opts.storage))


def test_plan_closes_what_a_killed_driver_left(tmp_path):
    space, compiled = load(tmp_path)
    study = optuna.create_study(direction="maximize")
    killed_rejected = study.ask()
    killed_rejected.set_user_attr("rejected", "over budget")  # the driver died before tell()
    too_big = study.ask()  # interrupted trial whose config no longer fits the budget
    too_big.set_user_attr("config", json.dumps({"family": "gru", "d_model": 512, "layers": 2}))
    fine = study.ask()
    fine.set_user_attr("config", json.dumps({"family": "gru", "d_model": 16, "layers": 1}))
    orphans, finished = _plan(study, compiled)
    states = [t.state for t in study.trials]
    assert states == [TrialState.PRUNED, TrialState.PRUNED, TrialState.RUNNING]
    assert study.trials[1].user_attrs["rejected"] == "over budget"
    assert [t.number for t in orphans] == [fine.number] and finished == 0


def test_status_and_sweep_bookkeeping_import_no_ray():
    code = ("import sys, search.status, search.dashboard, search.sweep, search.outcomes, search.summary\n"
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    # progress (a Tune callback) and the sweep no longer import each other
    code = "import sys, search.progress; print('search.sweep' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
