"""search.advice.sweep_warnings on hand-built studies: each warning fires where the sweep is
mis-set that way, and stays silent on a well-set sweep."""

import pytest

from handmade import add, make_study, well_set
from search.advice import MIN_TOP, TOP_K, sweep_warnings
from search.summary import print_summary


def _about(warnings: list[str], text: str) -> list[str]:
    return [w for w in warnings if text in w]


@pytest.fixture(params=["memory", "sqlite"])
def storage(request, tmp_path):
    return None if request.param == "memory" else f"sqlite:///{tmp_path / 'advice.db'}"


def test_well_set_sweep_has_no_warning(storage):
    assert sweep_warnings(well_set(make_study(storage))) == []


def test_too_few_complete_trials_say_nothing_about_top_trials():
    study = make_study(max_epochs=6)
    for i in range(MIN_TOP - 1):  # at max_epochs and at the floor: would warn with enough trials
        add(study, 0.5 + i / 100, d_model=16, best_epoch=6, epochs=6, n=i)
    assert sweep_warnings(study) == []


def test_best_epoch_at_max_epochs(storage):
    study = make_study(storage, max_epochs=6)
    for i in range(TOP_K):
        add(study, 0.6 + i / 100, d_model=40 + 8 * (i % 3), best_epoch=6 if i else 4, epochs=6, n=i)
    found = _about(sweep_warnings(study), "asha.max_epochs (6)")
    assert len(found) == 1 and "4 of the 5 top trials" in found[0] and "raise asha.max_epochs" in found[0]
    assert _about(sweep_warnings(well_set(make_study())), "max_epochs") == []


def test_only_the_top_trials_count():
    study = well_set(make_study(max_epochs=6))  # the best trials end at epoch 4
    for i in range(10):  # many worse trials at max_epochs do not make the top trials so
        add(study, 0.3, d_model=48, best_epoch=6, epochs=6, n=10 + i)
    assert sweep_warnings(study) == []


def test_grace_period_short_against_typical_best_epoch():
    study = make_study(max_epochs=12, grace=1)
    for i in range(TOP_K):
        add(study, 0.6 + i / 100, d_model=40 + 8 * (i % 3), best_epoch=7, epochs=12, n=i)
    found = _about(sweep_warnings(study), "grace_period 1")
    assert len(found) == 1 and "typical best epoch (7)" in found[0] and "towards 3" in found[0]
    sig = study.user_attrs["space_signature"]
    study.set_user_attr("space_signature", {**sig, "asha": sig["asha"] + [2]})  # with asha.brackets 2
    assert _about(sweep_warnings(study), "grace_period 1") == found
    study = make_study(max_epochs=12, grace=3)  # first rung at 3 against 7: fine
    for i in range(TOP_K):
        add(study, 0.6 + i / 100, d_model=40 + 8 * (i % 3), best_epoch=7, epochs=12, n=i)
    assert _about(sweep_warnings(study), "grace_period") == []


def test_best_epoch_one_means_too_hot():
    study = make_study(max_epochs=6, grace=1)
    for i in range(TOP_K):
        add(study, 0.6 + i / 100, d_model=40 + 8 * (i % 3), best_epoch=1, epochs=3, n=i)
    found = sweep_warnings(study)
    assert len(_about(found, "best epoch 1 in 5 of the 5 top trials")) == 1
    assert _about(found, "lower lr's range")


def test_most_trials_rejected(storage):
    study = well_set(make_study(storage))
    for i in range(8):  # 8 of 14: 57%, not yet "most"
        add(study, outcome="over_budget" if i % 2 else "forbidden", n=100 + i)
    assert _about(sweep_warnings(study), "rejected") == []
    add(study, outcome="forbidden", n=108)  # 9 of 15: 60%
    found = _about(sweep_warnings(study), "proposals were rejected")
    assert len(found) == 1 and found[0].startswith("9 of 15 proposals") and "4 over budget" in found[0]
    assert "5 forbidden" in found[0]
    study = well_set(make_study())
    add(study, outcome="over_budget", n=100)  # 1 of 7: no warning
    assert _about(sweep_warnings(study), "rejected") == []


def test_width_at_the_floor_wants_smaller_models(storage):
    study = make_study(storage, budget=50000)
    for i in range(TOP_K):  # the 15-minute Geolife case: d_model at 16 with 30K of 50K used
        add(study, 0.6 + i / 100, d_model=16, best_epoch=4, epochs=6, n_params=30000, n=i)
    found = _about(sweep_warnings(study), "d_model:")
    assert len(found) == 1
    assert "lower end of its range [16, 96]" in found[0] and "smaller models than the space allows" in found[0]
    assert "60% of the 50,000-parameter budget" in found[0]


def test_width_at_the_floor_that_is_also_the_widest_fit_says_the_budget_binds(storage):
    """At 50K, a pointer with an untied head fits d_model 16 and nothing wider: top trials at the
    floor are at the budget's limit, not asking for smaller models (the 15-minute TPE run of
    issue 12, seed 0: 94% of the budget used)."""
    study = make_study(storage, budget=50000)
    for i in range(TOP_K):
        add(study, 0.6 + i / 100, d_model=16, n_params=46884, n=i, extra={"width_max": 16 if i else 24})
    found = _about(sweep_warnings(study), "d_model:")
    assert len(found) == 1 and "lower end of its range [16, 96]" in found[0]
    assert "the widest their other choices fit in the budget" in found[0]
    assert "the budget binds, not the range" in found[0]
    assert "94% of the 50,000-parameter budget" in found[0] and "smaller models" not in found[0]
    study = make_study(storage, name="room", budget=50000)
    for i in range(TOP_K):  # d_model 24 would have fitted 3 of them: the search chose the floor
        add(study, 0.6 + i / 100, d_model=16, n_params=30000, n=i, extra={"width_max": 24 if i < 3 else 16})
    assert "smaller models than the space allows" in _about(sweep_warnings(study), "d_model:")[0]


def test_parameters_the_count_ignores_get_no_budget_advice():
    """lr at its high with the budget binding: the budget has no say over the learning rate."""
    study = make_study(budget=40000)
    for i in range(TOP_K):
        add(study, 0.6 + i / 100, d_model=40 + 8 * (i % 3), lr=9.5e-3, n_params=39000, n=i)
    found = _about(sweep_warnings(study), "lr:")
    assert len(found) == 1 and "upper end" in found[0] and "wants higher values than the space allows" in found[0]
    assert "budget" not in found[0]


def test_width_at_the_top_with_budget_not_binding():
    study = make_study(budget=100000)
    for i in range(TOP_K):
        add(study, 0.6 + i / 100, d_model=96 if i < 4 else 48, n_params=40000, n=i)
    found = _about(sweep_warnings(study), "d_model:")
    assert len(found) == 1 and "upper end" in found[0] and "budget is not binding" in found[0]
    assert "the space is the limit" in found[0]


def test_width_at_the_top_with_budget_binding():
    study = make_study(budget=40000)
    for i in range(TOP_K):
        add(study, 0.6 + i / 100, d_model=96, n_params=39000, n=i)
    found = _about(sweep_warnings(study), "d_model:")
    assert len(found) == 1 and "the budget binds as well" in found[0] and "raise budget.max_params" in found[0]


def test_log_parameter_at_its_low_end():
    study = make_study()
    for i in range(TOP_K):  # 1.2e-3 is 8% of the log span above 1e-3; linearly it would be 2%
        add(study, 0.6 + i / 100, d_model=40 + 8 * (i % 3), lr=1.2e-3, n=i)
    found = _about(sweep_warnings(study), "lr:")
    assert len(found) == 1 and "lower end" in found[0] and "lower values than the space allows" in found[0]
    study = make_study()
    for i in range(TOP_K):  # 1.5e-3: 18% of the log span, no longer at the end
        add(study, 0.6 + i / 100, d_model=40 + 8 * (i % 3), lr=1.5e-3, n=i)
    assert _about(sweep_warnings(study), "lr:") == []


def test_summary_prints_the_warnings(capsys):
    study = make_study(budget=50000)
    for i in range(TOP_K):
        add(study, 0.6 + i / 100, d_model=16, n_params=30000, n=i)
    print_summary(study, "sqlite:///x.db")
    out = capsys.readouterr().out
    assert "warnings (the sweep may be mis-set)" in out and "d_model: 5 of the 5 top trials" in out
    print_summary(well_set(make_study(name="fine")), "sqlite:///x.db")
    assert "warnings" not in capsys.readouterr().out


@pytest.mark.parametrize("high, warned", [(2, False), (4, True)])
def test_integer_range_needs_a_middle(high, warned):
    study = make_study()
    sig = study.user_attrs["space_signature"]
    sig["params"]["layers"] = ["int", 1, high, 1, False, None, None, None]
    study.set_user_attr("space_signature", sig)
    for i in range(TOP_K):  # every top trial at layers = high; [1, 2] has no middle to leave
        add(study, 0.6 + i / 100, d_model=40 + 8 * (i % 3), n=i, extra={"layers": high})
    assert bool(_about(sweep_warnings(study), "layers: 5 of the 5 top trials sit at the upper end")) is warned


def test_upper_end_without_a_budget():
    study = make_study(budget=None)
    for i in range(TOP_K):
        add(study, 0.6 + i / 100, d_model=96, n=i)
    found = _about(sweep_warnings(study), "d_model:")
    assert len(found) == 1 and "upper end" in found[0] and "with no budget, the space is the limit" in found[0]


def test_no_lower_end_warning_for_an_int_already_at_one():
    """layers / heads cannot go below 1: top trials at 1 are not a range to widen."""
    from search.advice import _edge
    study = make_study()
    for i in range(TOP_K):
        add(study, 0.6 + i / 100, n=i, extra={"layers": 1})
    top = study.get_trials(deepcopy=False)
    assert _edge("layers", ["int", 1, 3, None, False], top, None, False) == []
    study = make_study(name="two")
    for i in range(TOP_K):
        add(study, 0.6 + i / 100, n=i, extra={"layers": 2})
    found = _edge("layers", ["int", 2, 4, None, False], study.get_trials(deepcopy=False), None, False)
    assert len(found) == 1 and "lower end of its range [2, 4]" in found[0]
