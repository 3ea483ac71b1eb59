"""How the results commands read a large study (search/study_reads.py): the counts done in the
database equal the same counts over Optuna's trials, the trials read with fewer fields hold what
they were asked for, and the fallbacks (an in-memory study) give the same answers."""

import datetime
import math

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from handmade import DISTS, add, make_study, well_set
from search import study_reads
from search.internals.rdb import CoreReadRDBStorage
from search.storage import core_rdb, load_study
from search.outcomes import STOPPED, study_tally, tally
from search.ranking import complete_showing, ranked


def every_outcome(url: str | None, name: str = "every") -> optuna.Study:
    """Complete, pruned, failed, over budget, unbuildable, forbidden, stopped and a proposal left
    without its config (a killed driver's), with curves of every kind of value."""
    study = well_set(make_study(url, name=name))
    add(study, d_model=24, best_epoch=2, epochs=3, outcome="pruned", n=10)
    add(study, d_model=32, outcome="failed", n=11)
    for i, why in enumerate(["over_budget", "over_budget", "unbuildable", "forbidden"]):
        add(study, outcome=why, n=20 + i)
    add(study, d_model=40, outcome="pruned", n=30, extra={"error": f"{STOPPED}: the time budget ran out", "cpu_s": 7.5})
    params = {"family": "gru", "d_model_frac": 0.5, "lr": 3e-3, "dropout": 0.1}
    study.add_trial(create_trial(state=TrialState.FAIL, params=params, distributions=DISTS, user_attrs={},
                                 system_attrs={}))  # no config: counted nowhere
    study.add_trial(create_trial(state=TrialState.PRUNED, params=params, distributions=DISTS, system_attrs={},
                                 user_attrs={"config": "{}", "error": 3}, intermediate_values={
                                     0: math.inf, 1: math.nan}))  # an error that is no text; no finite epoch
    return study if url is None else load_study(url, name)  # opened as the commands open it: our SQL


@pytest.mark.parametrize("where", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "memory"])
def test_counts_in_the_database_equal_optunas_trials(where, tmp_path, request):
    url = (f"sqlite:///{tmp_path / 's.db'}" if where == "sqlite" else None if where == "memory"
           else request.getfixturevalue("postgres_url"))  # one server a session: the study's name is the test's
    study = every_outcome(url, name=f"every-{tmp_path.name}")
    assert isinstance(core_rdb(study._storage), CoreReadRDBStorage) == (where != "memory")
    trials = study.get_trials(deepcopy=False)
    counts, cpu = study_tally(study)
    assert counts == tally(trials)
    assert counts == {"complete": 6, "pruned": 2, "failed": 1, "stopped": 1, "running": 0, "over_budget": 2,
                      "unbuildable": 1, "forbidden": 1}
    assert cpu == pytest.approx(sum(t.user_attrs.get("cpu_s", 0.0) for t in trials))
    peaks = study_reads.step_peaks(study)
    want = [(t._trial_id, t.number, max((v for v in t.intermediate_values.values() if math.isfinite(v)), default=None))
            for t in trials if t.intermediate_values]
    assert peaks == want and peaks[-1][2] is None
    start, end = study_reads.time_span(study)
    assert start == min(t.datetime_start for t in trials if t.datetime_start)
    assert end == max(t.datetime_complete for t in trials if t.datetime_complete)
    assert isinstance(start, datetime.datetime)


def test_fewer_fields_then_the_chosen_trials_whole(tmp_path):
    study = every_outcome(f"sqlite:///{tmp_path / 's.db'}")
    complete = complete_showing(study, ("n_params",))
    assert [t.number for t in complete] == [t.number for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert all(set(t.user_attrs) <= {"config", "confirmed", "n_params"} and not t.params and not t.intermediate_values
               for t in complete)
    assert [t.number for t in ranked(study, complete=complete)] == [t.number for t in ranked(study)]
    top = study_reads.whole_trials(study, ranked(study, complete=complete)[:2])
    by_number = {t.number: t for t in study.get_trials()}
    assert [t.params for t in top] == [by_number[t.number].params for t in top]
    assert [t.user_attrs for t in top] == [by_number[t.number].user_attrs for t in top]
    assert study_reads.trials_by_id(study, [top[1]._trial_id, top[0]._trial_id]) == top[::-1]
