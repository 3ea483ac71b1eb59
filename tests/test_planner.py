"""The budget planner (search/planner.py): ASHA's average epochs, the trials a budget fits, its
warning firing and not, a probe on real data, the sweep's plan lines, and the end-of-sweep
warning of a budget that never left the sampler's start-up."""

import pytest

from data_io import load_dataset
from data_io.folds import group_subset
from handmade import add, make_study, well_set
from search.advice import sweep_warnings
from search.planner import Plan, expected_epochs, plan_budget
from spaces import CompiledSpace
from spaces.schema import parse_space


def test_expected_epochs_follow_ashas_promotions():
    assert expected_epochs(4, 1, 2) == 1 + 1 / 2 + 2 / 4  # rungs 1, 2; half go on from each
    assert expected_epochs(10, 10, 3) == 10  # no rung below max_epochs: every trial runs them all
    assert expected_epochs(27, 1, 3) == pytest.approx(1 + 2 / 3 + 6 / 9 + 18 / 27)


def _plan(budget_s, startup=10):
    return Plan({"gru": 2.0, "transformer": 4.0}, {"gru": 0.0, "transformer": 1.0}, epochs_per_trial=2.0, slots=2,
                budget_s=budget_s, startup=startup)


def test_the_warning_fires_below_three_times_the_startup_and_not_above():
    assert _plan(60).trial_s == pytest.approx((4 + 9) / 2)
    few = _plan(60)
    assert few.trials == 18 and "fits about 18 trials, under 3 x the sampler's 10" in few.warning()
    assert few.warning().endswith("raise --time-budget to about 98s")  # 30 trials x 6.5 s / 2 at once
    assert _plan(100).trials == 30 and _plan(100).warning() is None
    assert _plan(60, startup=None).warning() is None  # a sampler without a random start-up
    assert _plan(None).trials is None and _plan(None).warning() is None
    assert "lets the search examine about 18 configurations" in few.lines()[1]
    from search.planner import cheaper_options
    from spaces.schema import Asha
    few.cheaper = cheaper_options(Asha())
    assert "; asha.fidelity: data, the early rungs on a share of the data; asha.pause: true" in few.warning()
    assert cheaper_options(Asha(fidelity="data", pause=True)) == ()


def test_group_subset_keeps_every_group_and_its_share(synth_dir):
    data = load_dataset(synth_dir)
    small = group_subset(data, 0.25, seed=3, splits=("train", "val"))
    for split in ("train", "val"):
        full, cut = data[split], small[split]
        assert set(cut.user) == set(full.user)
        assert abs(len(cut) - 0.25 * len(full)) <= len(set(full.user))  # ceil per group
        assert set(cut.sample_id) <= set(full.sample_id)
    assert small["test"] is data["test"] and small.info.split_sizes["train"] == len(small["train"])
    again = group_subset(data, 0.25, seed=3)
    assert (again["train"].sample_id == small["train"].sample_id).all()


def test_probe_times_each_family_on_the_data(synth_dir, tmp_path):
    space = parse_space({"name": "p", "data": {"path": str(synth_dir)}, "budget": {"max_params": 30000, "width": "d_model"},
                         "asha": {"max_epochs": 4, "grace_period": 1, "reduction_factor": 2},
                         "params": {"family": {"type": "categorical", "choices": ["gru", "transformer"]},
                                    "d_model": {"type": "int", "low": 16, "high": 64, "step": 8},
                                    "lr": 0.003, "batch_size": 64}}, tmp_path / "p.yaml")
    data = load_dataset(synth_dir)
    plan = plan_budget(CompiledSpace(space, data.info), data, slots=2, threads=1, budget_s=300, startup=10)
    assert set(plan.epoch_s) == {"gru", "transformer"}
    assert all(0 < s < 60 for s in plan.epoch_s.values())
    assert plan.epochs_per_trial == 2.0 and plan.trials == int(300 * 2 / plan.trial_s)


def test_a_failing_probe_fit_leaves_no_plan_and_no_error(synth_dir, tmp_path, monkeypatch):
    from models import NonFiniteLoss
    space = parse_space({"name": "f", "data": {"path": str(synth_dir)},
                         "params": {"family": "gru", "d_model": 16, "lr": 0.003, "batch_size": 64}}, tmp_path / "f.yaml")
    data = load_dataset(synth_dir)

    def diverges(*args, **kwargs):
        raise NonFiniteLoss("non-finite training loss")
    monkeypatch.setattr("search.planner.fit", diverges)
    assert plan_budget(CompiledSpace(space, data.info), data, slots=2, threads=1, budget_s=60, startup=10) is None


def test_a_budget_inside_the_startup_says_so_at_the_end():
    study = make_study()
    for i in range(4):
        add(study, 0.5 + i / 100, n=i)
    assert [w for w in sweep_warnings(study) if "time budget" in w] == []  # no budget: asked for 4 trials
    study.set_user_attr("time_budget_s", 900.0)
    found = [w for w in sweep_warnings(study) if "time budget" in w]
    assert len(found) == 1 and found[0].startswith("the time budget fitted 4 trials, all inside the sampler's 10")
    assert "asha.max_epochs, asha.fidelity: data, asha.pause: true)" in found[0]  # the study uses neither
    wide = well_set(make_study(name="wide"), k=12)
    wide.set_user_attr("time_budget_s", 900.0)
    assert [w for w in sweep_warnings(wide) if "time budget" in w] == []
