"""The stock paths (NEXTSWEEP_STOCK=1, or an Optuna / Ray other than the tested ones): Optuna's own
TPESampler (in the start-up rounds), Ray's own ASHA promotion rule, ASHA's rungs computed from its
settings; and a sweep end to end through them."""

import logging
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from data_io.geolife import GEOLIFE_SHAPE
from search.asha import make_asha, rung_epochs
from search.asha.scheduler import RecordingASHA
from search.internals import compat
from search.samplers import StartupRounds, make_sampler
from search.sweep import SweepOptions, run_sweep
from spaces import CompiledSpace, load_space
from spaces.schema import Asha

SPACES = Path(__file__).resolve().parents[1] / "spaces"


@pytest.fixture
def stock(monkeypatch, caplog):
    monkeypatch.setenv(compat.STOCK_ENV, "1")
    monkeypatch.setattr(compat, "_warned", set())  # each test sees its own once-per-process warnings
    caplog.set_level(logging.WARNING, logger=compat.__name__)
    return caplog


def asked_params(sampler, n=14):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    compiled = CompiledSpace(load_space(SPACES / "geolife_500k.yaml"), GEOLIFE_SHAPE)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    out = []
    for _ in range(n):
        trial = study.ask()
        p = compiled.propose(trial)
        study.tell(trial, p.n_params / 5e5)
        out.append(dict(trial.params))
    return out


def test_stock_tpe_is_optunas_own_with_the_same_seed_start_up_and_rounds(stock, monkeypatch):
    sampler = make_sampler("tpe", 3, startup=5)
    assert type(sampler) is StartupRounds and type(sampler.base) is optuna.samplers.TPESampler
    stock_tpe = optuna.samplers.TPESampler(seed=3, multivariate=True, constant_liar=True, n_startup_trials=5)
    asked = asked_params(sampler)
    assert asked == asked_params(StartupRounds(stock_tpe, 5, seed=3))
    assert "start-up rounds included" in stock.text  # the warning says nothing is lost but speed
    if compat.installed("optuna") == compat.TESTED_OPTUNA:  # the fast path suggests the same
        monkeypatch.delenv(compat.STOCK_ENV)
        fast = make_sampler("tpe", 3, startup=5)
        assert type(fast.base) is not optuna.samplers.TPESampler and asked_params(fast) == asked


def rung_decisions(asha, values: list[float]) -> list[str]:
    """Each trial's decision at the first rung (epoch 1), the trials arriving in this order."""
    asha.set_search_properties("best_val_hit5", "max")
    out = []
    for i, v in enumerate(values):
        t = SimpleNamespace(trial_id=f"t{i}")
        asha.on_trial_add(None, t)
        out.append(asha.on_trial_result(None, t, {"epoch": 1, "val_hit5": v, "best_val_hit5": v}))
    return out


def test_stock_asha_keeps_rays_promotion_rule_and_says_strict_is_off(stock):
    strict = Asha(max_epochs=9, grace_period=1, reduction_factor=3, strict=True)
    asha = make_asha(strict)
    assert type(asha) is RecordingASHA and not asha.strict
    go, stop = RecordingASHA.CONTINUE, RecordingASHA.STOP
    # Ray's rule (the paper's would stop the first two): see test_searcher's strict tests
    assert rung_decisions(asha, [0.1, 0.2, 0.5, 0.4, 0.3]) == [go, go, go, go, stop]
    assert "asha.strict" in stock.text
    assert rung_epochs(asha) == [1, 3, 9]


def test_stock_asha_still_ranks_by_the_rung_epoch(stock):
    """asha.rank_by: epoch needs no private Ray state: the trial past its peak meets the rung at 0.4."""
    asha = make_asha(Asha(max_epochs=4, grace_period=1, reduction_factor=2, rank_by="epoch"), metric="val_hit5")
    asha.set_search_properties("best_val_hit5", "max")
    a, b = SimpleNamespace(trial_id="a"), SimpleNamespace(trial_id="b")
    for t in (a, b):
        asha.on_trial_add(None, t)
    asha.on_trial_result(None, a, {"epoch": 1, "val_hit5": 0.5, "best_val_hit5": 0.5})
    asha.on_trial_result(None, b, {"epoch": 1, "val_hit5": 0.7, "best_val_hit5": 0.7})
    asha.on_trial_result(None, a, {"epoch": 2, "val_hit5": 0.6, "best_val_hit5": 0.6})
    assert asha.on_trial_result(None, b, {"epoch": 2, "val_hit5": 0.4, "best_val_hit5": 0.7}) == RecordingASHA.STOP


@pytest.mark.skipif(compat.installed("ray") != compat.TESTED_RAY, reason="reads the tested Ray's private brackets")
def test_rungs_from_the_settings_are_the_milestones_ray_uses():
    """One formula for the sweep's checkpoints and the report, equal to Ray's own brackets' milestones
    (float edges of the log included: log(1000) / log(10) < 3, so Ray has no rung at 1000)."""
    from ray.tune.schedulers import ASHAScheduler

    import search.report
    from search.asha import rungs
    assert search.report.rungs is rungs  # computed in one place
    assert rungs(1000, 1, 10) == [1, 10, 100]
    for max_t in (1, 3, 8, 9, 12, 20, 27, 100, 243, 1000):
        for grace in (1, 2, 3, 5):
            for rf in (1.5, 2, 2.5, 3, 4, 10):
                for brackets in (1, 2, 3):
                    if grace > max_t:
                        continue
                    ray_asha = ASHAScheduler(max_t=max_t, grace_period=grace, reduction_factor=rf, brackets=brackets)
                    ray_rungs = sorted({int(m) for b in ray_asha._brackets for m, _ in b._rungs})
                    settings = (max_t, grace, rf, brackets)
                    assert rungs(*settings) == ray_rungs, settings
                    assert rung_epochs(make_asha(Asha(*settings))) == ray_rungs, settings


@pytest.mark.ray
@pytest.mark.slow
def test_a_sweep_runs_end_to_end_through_the_stock_paths(stock, tmp_path, monkeypatch):
    import ray

    from search import sweep
    made = []

    def recording_make_asha(*args, **kwargs):  # the real factory; the test keeps what it made
        made.append(make_asha(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(sweep, "make_asha", recording_make_asha)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    # The Ray an earlier test of this process left running, else a new one of its own (address="local":
    # never a cluster another test started on this machine); run_sweep uses whichever is up.
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        study = run_sweep(SweepOptions(space=str(SPACES / "quickstart.yaml"), study="stock", samples=4, dir=str(tmp_path), seed=0,
                                       storage=f"sqlite:///{tmp_path / 'db.sqlite'}",
                                       overrides=["asha.max_epochs=3", "asha.strict=true"]))
    finally:
        if started:
            ray.shutdown()
    assert type(study.sampler) is StartupRounds and type(study.sampler.base) is optuna.samplers.TPESampler
    assert len(made) == 1 and type(made[0]) is RecordingASHA and not made[0].strict
    handed = [t for t in study.get_trials() if "config" in t.user_attrs]
    assert len(handed) == 4 and all(t.state.is_finished() for t in handed)
    assert any(t.state == TrialState.COMPLETE for t in handed)
